"""The `forecast` schema: deals now, every past version of them, and consumer bookkeeping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from shared.consumer_store import consumer_tables
from shared.db import make_metadata
from shared.deal_fields import DEAL_FIELDS, Kind

SCHEMA = "forecast"


class ForecastBase(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


class DealColumns:
    """The deal's fields as columns, shared by the current row and its history rows: one
    per field of `shared/deal_fields.py` (set below), then the bookkeeping ones."""

    deleted: Mapped[bool] = mapped_column(Boolean)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)


_COLUMN_TYPES: dict[Kind, TypeEngine[Any]] = {
    Kind.TEXT: Text(),
    Kind.ID: Text(),
    Kind.MONEY: Numeric(),
    Kind.CURRENCY: Text(),
    Kind.DATE: Date(),
    Kind.DATETIME: DateTime(timezone=True),
    Kind.ENUM: Text(),
    Kind.SPLITS: JSONB(),
}
# Declarative mapping copies a mixin's columns into each table that uses it, so columns
# set here, before `Deal` and `DealVersion` are declared, are mapped like written ones.
# Code that filters on them reads them from `__table__.c`: mypy does not see them.
for _field in DEAL_FIELDS:
    setattr(
        DealColumns,
        _field.name,
        mapped_column(_COLUMN_TYPES[_field.kind], nullable=_field.nullable),
    )


ROLLUP_COLUMNS = (
    "owner_id",
    "currency",
    "status",
    "stage",
    "pipeline",
    "forecast_category",
    "amount",
    "deleted",
)
"""What a roll-up sums a deal by: carried in the close-date indexes (`INCLUDE`), so that a
period's deals, now or at any instant, are read from the index alone (an index-only scan
of one close-date range) and never from the wide rows."""


class Deal(DealColumns, ForecastBase):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_owner_id", "owner_id"),
        Index("ix_deals_stage", "stage"),
        Index(
            "ix_deals_close_date",
            "close_date",
            postgresql_include=[*ROLLUP_COLUMNS, "deal_id", "created_at"],
        ),
        Index("ix_deals_updated_at", "updated_at", "deal_id"),
        # The open deals now, by owner: what the metrics' open counts read, from this alone.
        Index(
            "ix_deals_open",
            "owner_id",
            postgresql_include=["currency", "amount"],
            postgresql_where=text("status = 'open' AND deleted IS FALSE"),
        ),
    )

    deal_id: Mapped[str] = mapped_column(Text, primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DealVersion(DealColumns, ForecastBase):
    """One state of a deal, in force from `valid_from` (CRM time) until `valid_to`."""

    __tablename__ = "deal_versions"
    __table_args__ = (
        Index("ix_deal_versions_valid_from", "valid_from"),
        Index(
            "ix_deal_versions_close_date",
            "close_date",
            postgresql_include=["valid_from", "valid_to", *ROLLUP_COLUMNS, "deal_id"],
        ),
    )

    deal_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DealChange(ForecastBase):
    """Every deal event applied, keyed by its identity: the dedupe set and the replay source.

    A late event is folded in by rebuilding that deal's versions from these rows.
    """

    __tablename__ = "deal_changes"
    __table_args__ = (Index("ix_deal_changes_deal_id", "deal_id"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    deal_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Activity(ForecastBase):
    """Each activity as its latest event left it. A deleted one keeps its row for audit,
    with `deleted_at` set, and counts for nothing. A deletion that arrives before the
    activity itself (it is keyed differently, so it may) leaves a row with no `kind` yet,
    so that an older logged event cannot bring the activity back."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_deal_id", "deal_id"),)

    activity_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str | None] = mapped_column(Text)
    deal_id: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)
    rep_id: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)


# Stored offsets and dead letters, in this schema beside the state they account for.
CONSUMER_TABLES = consumer_tables(ForecastBase.metadata)

# Each subpackage's tables, imported last (they build on ForecastBase) so that Alembic's
# metadata has them all.
import services.forecast_worker.calls.models  # noqa: E402
import services.forecast_worker.config.models  # noqa: E402
import services.forecast_worker.hierarchy.models  # noqa: E402
import services.forecast_worker.quotas.models  # noqa: E402
import services.forecast_worker.snapshots.models  # noqa: E402
import services.forecast_worker.summary.models  # noqa: E402, F401
