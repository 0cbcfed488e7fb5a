"""The hierarchy's tables: every rep and team upsert kept, and the validity intervals over
dates rebuilt from them (`valid_to` exclusive, null while current)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Index, Numeric, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class HierarchyChange(ForecastBase):
    """Every rep or team upsert applied, keyed by its identity: the dedupe set, and what an
    entity's intervals are rebuilt from when any of its events arrives."""

    __tablename__ = "hierarchy_changes"
    __table_args__ = (Index("ix_hierarchy_changes_entity", "kind", "entity_id"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IntervalColumns:
    valid_from: Mapped[date] = mapped_column(Date, primary_key=True)
    valid_to: Mapped[date | None] = mapped_column(Date)
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)


class RepAssignment(IntervalColumns, ForecastBase):
    """A rep as it stood from `valid_from` until `valid_to`: which team it sold for."""

    __tablename__ = "rep_assignments"
    __table_args__ = (Index("ix_rep_assignments_team_id", "team_id"),)

    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)


class Team(IntervalColumns, ForecastBase):
    """A team as it stood from `valid_from` until `valid_to`: its manager, region, parent."""

    __tablename__ = "teams"

    team_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    parent_team_id: Mapped[str | None] = mapped_column(Text)
    manager_id: Mapped[str | None] = mapped_column(Text)
    manager_name: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(Text)
