"""Calls' and adjustments' SQL: append a row, list history, and the latest rows per target.

"Latest" is by `(recorded_at, id)` everywhere: the listing order, the cursor and the
current call agree, even for two rows recorded in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.calls.models import Adjustment, Call

_Row = TypeVar("_Row", Call, Adjustment)

AdjustmentKey = tuple[str, str, str]
"""(target kind `rep` or `team`, the rep's or team's id, category)."""


async def add_call(session: AsyncSession, *, values: dict[str, Any]) -> Call:
    """Append one call; answered as stored (its id and server `recorded_at`)."""
    return (await session.scalars(insert(Call).values(**values).returning(Call))).one()


async def add_adjustment(session: AsyncSession, *, values: dict[str, Any]) -> Adjustment:
    """Append one adjustment; answered as stored (its id and server `recorded_at`)."""
    return (await session.scalars(insert(Adjustment).values(**values).returning(Adjustment))).one()


def _newest_first(
    query: Select[_Row], model: type[_Row], after: tuple[datetime, int] | None, limit: int
) -> Select[_Row]:
    if after is not None:
        query = query.where(tuple_(model.recorded_at, model.id) < tuple_(*after))
    return query.order_by(model.recorded_at.desc(), model.id.desc()).limit(limit)


def _in_period(model: type[_Row], period_start: date, period_end: date) -> ColumnElement[bool]:
    return and_(model.period_start == period_start, model.period_end == period_end)


async def list_calls(
    session: AsyncSession,
    *,
    period: tuple[date, date] | None,
    rep_id: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[Call]:
    """Every call matching the filters, newest first."""
    query = select(Call)
    if period is not None:
        query = query.where(_in_period(Call, *period))
    if rep_id is not None:
        query = query.where(Call.rep_id == rep_id)
    return (await session.scalars(_newest_first(query, Call, after, limit))).all()


async def list_adjustments(
    session: AsyncSession,
    *,
    period: tuple[date, date] | None,
    rep_id: str | None,
    team_id: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[Adjustment]:
    """Every adjustment matching the filters, newest first; given both a rep and a team,
    the adjustments of either."""
    query = select(Adjustment)
    if period is not None:
        query = query.where(_in_period(Adjustment, *period))
    targets = [
        and_(Adjustment.target_kind == kind, Adjustment.target_id == target)
        for kind, target in (("rep", rep_id), ("team", team_id))
        if target is not None
    ]
    if targets:
        query = query.where(or_(*targets))
    return (await session.scalars(_newest_first(query, Adjustment, after, limit))).all()


async def latest_calls(
    session: AsyncSession, *, period_start: date, period_end: date, as_of: datetime | None = None
) -> dict[str, Call]:
    """Each rep's current call for the period, or as it stood at `as_of` (the latest
    recorded at or before it): what a roll-up shows beside its computed numbers."""
    query = select(Call).where(_in_period(Call, period_start, period_end))
    if as_of is not None:
        query = query.where(Call.recorded_at <= as_of)
    query = query.ext(distinct_on(Call.rep_id)).order_by(
        Call.rep_id, Call.recorded_at.desc(), Call.id.desc()
    )
    return {row.rep_id: row for row in await session.scalars(query)}


async def latest_adjustments(
    session: AsyncSession, *, period_start: date, period_end: date, as_of: datetime | None = None
) -> dict[AdjustmentKey, Adjustment]:
    """Each target's current adjustment per category for the period, or as it stood at
    `as_of` (the latest recorded at or before it)."""
    query = select(Adjustment).where(_in_period(Adjustment, period_start, period_end))
    if as_of is not None:
        query = query.where(Adjustment.recorded_at <= as_of)
    key = (Adjustment.target_kind, Adjustment.target_id, Adjustment.category)
    query = query.ext(distinct_on(*key)).order_by(
        *key, Adjustment.recorded_at.desc(), Adjustment.id.desc()
    )
    return {
        (row.target_kind, row.target_id, row.category): row for row in await session.scalars(query)
    }
