"""Quotas as their latest `quota.set` event left them, and every such event kept, so that an
`as_of` roll-up finds the amount a quota had at its instant."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, Index, Numeric, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class _QuotaFields:
    """What a `quota.set` event says of its quota, and the event's place in the ordering."""

    rep_id: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))


class Quota(_QuotaFields, ForecastBase):
    """One quota of a rep or a team (exactly one is set) for a period, both ends inclusive."""

    __tablename__ = "quotas"
    __table_args__ = (
        Index("ix_quotas_rep_id", "rep_id", "period_start"),
        Index("ix_quotas_team_id", "team_id", "period_start"),
    )

    quota_id: Mapped[str] = mapped_column(Text, primary_key=True)
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)


class QuotaChange(_QuotaFields, ForecastBase):
    """One `quota.set` event as it came (a redelivery is stored once): the history behind
    `Quota`, read by `as_of` answers, since a revised quota's current row no longer says
    what it was before the revision."""

    __tablename__ = "quota_changes"
    __table_args__ = (Index("ix_quota_changes_quota_id", "quota_id", "event_time"),)

    event_source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    quota_id: Mapped[str] = mapped_column(Text)
