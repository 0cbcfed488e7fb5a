"""Where snapshots are kept: a header per snapshot and its rows per (grouping, group, currency).

A row has a column per field of the roll-up row (`rollup.schemas.RollupRow`), set from that
model below, so a snapshot stores exactly what the roll-up answers and reads back into the
same model; a field added to the roll-up is a column here (and `salesops db check` asks for
its migration).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from services.forecast_worker.models import ForecastBase
from services.forecast_worker.rollup.schemas import RollupRow

KINDS = ("weekly", "period_end", "on_demand", "backfill")
SCHEDULED_KINDS = ("weekly", "period_end", "backfill")
"""Kinds taken at most once per (period, instant): the unique slot index covers them."""


class Snapshot(ForecastBase):
    __tablename__ = "snapshots"
    __table_args__ = (
        CheckConstraint("kind IN ('weekly', 'period_end', 'on_demand', 'backfill')", name="kind"),
        # Replicas and restarts insert the same slot with ON CONFLICT DO NOTHING: one wins.
        Index(
            "ux_snapshots_slot",
            "period_start",
            "period_end",
            "as_of",
            "kind",
            unique=True,
            postgresql_where=text("kind <> 'on_demand'"),
        ),
        Index("ix_snapshots_period", "period_start", "period_end", "as_of", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    period: Mapped[str] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    """Exclusive, as `Period.end`."""
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """The instant the roll-up was frozen at (for a late or backfilled one, not `taken_at`)."""
    kind: Mapped[str] = mapped_column(Text)
    taken_by: Mapped[str] = mapped_column(Text)
    """The API key's id (`Principal.key_id`), or `scheduler`."""
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SnapshotRowColumns:
    """The roll-up row's fields as columns (set below from `RollupRow`)."""


def _column_type(annotation: Any) -> TypeEngine[Any]:
    kinds = set(get_args(annotation)) or {annotation}
    if int in kinds:
        return Integer()
    if datetime in kinds:
        return DateTime(timezone=True)
    if str in kinds:
        return Text()
    return Numeric()


# As in `models.DealColumns`: columns set on the mixin before the table is declared are
# mapped like written ones; code reads them from `__table__.c`.
for _name, _field in RollupRow.model_fields.items():
    setattr(
        SnapshotRowColumns,
        _name,
        mapped_column(
            _column_type(_field.annotation), nullable=type(None) in get_args(_field.annotation)
        ),
    )


class SnapshotRow(SnapshotRowColumns, ForecastBase):
    __tablename__ = "snapshot_rows"
    __table_args__ = (
        CheckConstraint("group_by IN ('rep', 'team', 'manager', 'region')", name="group_by"),
    )

    snapshot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    group_by: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The row's place in the roll-up's order (group, then currency; the null group last)."""
