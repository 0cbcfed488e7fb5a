"""One roll-up as the API answers it: the sums query, the latest calls and adjustments, and
the rows built from them. The live route, an `as_of` answer and every snapshot (scheduled,
on demand, backfilled) go through here, so a snapshot is by construction what the roll-up
said at its instant."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.calls import repository as calls
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.rollup import repository
from services.forecast_worker.rollup.repository import GroupBy, GroupRow
from services.forecast_worker.rollup.rows import rollup_rows
from services.forecast_worker.rollup.schemas import RollupRow
from shared.periods import Period, hierarchy_day


async def compute_rollup(
    session: AsyncSession,
    *,
    stages: StageTable,
    period: Period,
    group_by: GroupBy,
    as_of: datetime | None,
) -> list[RollupRow]:
    """The roll-up rows of `period` by `group_by` as they stood at `as_of` (live when None):
    three statements whatever the number of deals (sums, calls, adjustments)."""
    sums = await period_sums(session, stages=stages, period=period, group_by=group_by, as_of=as_of)
    latest_calls = await calls.latest_calls(
        session, period_start=period.start, period_end=period.end, as_of=as_of
    )
    adjustments = await calls.latest_adjustments(
        session, period_start=period.start, period_end=period.end, as_of=as_of
    )
    return rollup_rows(group_by, sums, latest_calls, adjustments)


async def period_sums(
    session: AsyncSession,
    *,
    stages: StageTable,
    period: Period,
    group_by: GroupBy,
    as_of: datetime | None,
) -> list[GroupRow]:
    """The roll-up's sums of `period` at `as_of` (live when None), grouped by the hierarchy
    of its day (`periods.hierarchy_day`): what the roll-up and the projection's bottom-up
    side both read."""
    return await repository.group_sums(
        session,
        stages=stages,
        group_by=group_by,
        start=period.start,
        end=period.end,
        day=hierarchy_day(period, as_of or datetime.now(UTC)),
        as_of=as_of,
    )
