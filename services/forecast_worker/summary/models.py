"""The summary tables: what the metrics and the inspection aggregate over a year of deals,
derived from `forecast.deals` and `forecast.deal_versions` by `summary.repository`, never
written by the apply path.

Each row is a function of one deal's current row and its versions alone (no hierarchy, no
configuration: those are joined when read), so a deal is summarised again, whole, whenever
its current row changes, and summarising a deal twice changes nothing."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, Double, Index, Integer, Numeric, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class StageVisit(ForecastBase):
    """One visit of a closed (won or lost, not deleted) deal to a stage: a run of its
    versions in one stage (versions without a stage left out), in version order. The
    deal's current close date, owner and currency are copied in, so a year of visits is one
    close-date range of this table."""

    __tablename__ = "stage_visits"
    __table_args__ = (
        Index(
            "ix_stage_visits_close_date",
            "close_date",
            postgresql_include=[
                "owner_id",
                "currency",
                "stage",
                "days",
                "first_visit",
                "later_stages",
            ],
        ),
    )

    deal_id: Mapped[str] = mapped_column(Text, primary_key=True)
    visit: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1 for the deal's first visit, in version order."""
    close_date: Mapped[date] = mapped_column(Date)
    owner_id: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    days: Mapped[float | None] = mapped_column(Double)
    """From entering the stage to entering the next visit's, in days (seconds / 86400 as a
    double, as `metrics.figures` measures it); null for the last visit, which has not
    ended."""
    first_visit: Mapped[bool] = mapped_column(Boolean)
    """Whether this is the deal's first visit to this stage (its name in any letter case)."""
    later_stages: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    """On a first visit, the stages of every visit after it (repeats kept, in lower case, as
    stage names are compared without regard to case): the deal advanced from this stage
    when one of them comes later in the pipeline's order, which is the configuration's and
    is only known when read."""


class DealCreation(ForecastBase):
    """When a deal (not deleted, with a creation time) was created and its owner, currency
    and amount at creation (its first version): the created pipeline of a range is one
    creation-day range of this table's index (which carries the rest) rather than a
    first-version lookup per deal."""

    __tablename__ = "deal_creations"
    __table_args__ = (
        Index(
            "ix_deal_creations_created_on",
            "created_on",
            postgresql_include=["owner_id", "currency", "amount"],
        ),
    )

    deal_id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_on: Mapped[date] = mapped_column(Date)
    """The UTC calendar day of the deal's current `created_at`."""
    owner_id: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(Numeric)


class SummaryMark(ForecastBase):
    """How far the summary has read the deals: one row."""

    __tablename__ = "summary_marks"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    through: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """Every deal whose `updated_at` is before this is summarised as it is now (no row:
    none is known to be)."""
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the last catch-up began: how current the summary is, for whoever looks."""
