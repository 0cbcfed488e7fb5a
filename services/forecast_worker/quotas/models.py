"""Quotas as their latest `quota.set` event left them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, Index, Numeric, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class Quota(ForecastBase):
    """One quota of a rep or a team (exactly one is set) for a period, both ends inclusive."""

    __tablename__ = "quotas"
    __table_args__ = (
        Index("ix_quotas_rep_id", "rep_id", "period_start"),
        Index("ix_quotas_team_id", "team_id", "period_start"),
    )

    quota_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rep_id: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
