"""What accuracy reads: a closed period's actual closed won per (group, currency), now."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.rollup.compute import period_sums
from services.forecast_worker.rollup.grouping import GroupKey
from services.forecast_worker.rollup.repository import GroupBy
from shared.periods import Period


async def actuals(
    session: AsyncSession, *, stages: StageTable, period: Period, group_by: GroupBy
) -> dict[GroupKey, Decimal]:
    """The live roll-up's closed won of the closed `period` (so grouped by the hierarchy of
    its last day): one aggregate statement."""
    rows = await period_sums(session, stages=stages, period=period, group_by=group_by, as_of=None)
    return {(r.group, r.currency): r.sums.closed_won for r in rows}
