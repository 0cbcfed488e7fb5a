"""What accuracy reads: a closed period's actual closed won per (group, currency), now."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.accuracy.report import Key
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.periods import Period
from services.forecast_worker.rollup.repository import GroupBy, group_sums


async def actuals(
    session: AsyncSession, *, stages: StageTable, period: Period, group_by: GroupBy
) -> dict[Key, Decimal]:
    """The live roll-up's closed won of `period` (grouped by the hierarchy of its last
    day): one aggregate statement."""
    rows = await group_sums(
        session,
        stages=stages,
        group_by=group_by,
        start=period.start,
        end=period.end,
        day=period.end - timedelta(days=1),
        as_of=None,
    )
    return {(r.group, r.currency): r.sums.closed_won for r in rows}
