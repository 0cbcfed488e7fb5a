"""Where calls and adjustments are kept: append-only rows, one per submission.

Nothing is ever overwritten: the current call is the latest row by `(recorded_at, id)`,
and the database itself refuses UPDATE, DELETE and TRUNCATE on these tables (a trigger
created by the migration), so history cannot be rewritten through any client.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Identity,
    Index,
    Numeric,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class PeriodColumns:
    """The period as given and the dates it meant when recorded: a later change of the
    fiscal start month must not move a call into another period."""

    period: Mapped[str] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    """Exclusive, as `Period.end`."""
    currency: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(Text)
    """The writing API key's id (`shared.auth.Principal.key_id`), never the key."""
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Call(PeriodColumns, ForecastBase):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint("num_nonnulls(commit, best_case, pipeline) > 0", name="some_category"),
        CheckConstraint("commit >= 0 AND best_case >= 0 AND pipeline >= 0", name="not_negative"),
        CheckConstraint("char_length(note) <= 255", name="note"),
        Index("ix_calls_period_rep", "period_start", "period_end", "rep_id", "recorded_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rep_id: Mapped[str] = mapped_column(Text)
    commit: Mapped[Decimal | None] = mapped_column(Numeric)
    best_case: Mapped[Decimal | None] = mapped_column(Numeric)
    pipeline: Mapped[Decimal | None] = mapped_column(Numeric)
    note: Mapped[str | None] = mapped_column(Text)


class Adjustment(PeriodColumns, ForecastBase):
    __tablename__ = "adjustments"
    __table_args__ = (
        CheckConstraint("target_kind IN ('rep', 'team')", name="target_kind"),
        CheckConstraint("category IN ('commit', 'best_case', 'pipeline')", name="category"),
        CheckConstraint("amount >= 0", name="not_negative"),
        CheckConstraint("char_length(note) BETWEEN 1 AND 255", name="note"),
        Index(
            "ix_adjustments_period_target",
            "period_start",
            "period_end",
            "target_kind",
            "target_id",
            "category",
            "recorded_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    target_kind: Mapped[str] = mapped_column(Text)
    """`rep` or `team`: whose number `target_id` names."""
    target_id: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    note: Mapped[str] = mapped_column(Text)
    """Required: an override says why (Salesforce's ForecastingAdjustment caps it at 255)."""
