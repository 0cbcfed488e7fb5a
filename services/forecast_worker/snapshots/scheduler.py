"""The scheduled snapshots: a background task of the forecast worker that takes the due
slots (`schedule.due_slots`) not taken yet, each frozen as of its slot's instant.

`take_due(now)` is one step, and the whole of the logic: the loop only calls it every
`SALESOPS_SNAPSHOT_CHECK_SECONDS`. A worker that was down takes what it missed in the last
`SALESOPS_SNAPSHOT_CATCH_UP_DAYS` when it starts; a slot is looked up first, so a step
with nothing due is one small indexed query, and each slot is its own transaction, so one
failing slot does not hold back the others (the next step tries it again).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.config.repository import load_config
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.periods import PeriodKind
from services.forecast_worker.snapshots.repository import take_snapshot, taken_instants
from services.forecast_worker.snapshots.schedule import due_slots
from shared.settings import Settings

SCHEDULER = "scheduler"
"""`taken_by` of the scheduled snapshots."""

_log = logging.getLogger(__name__)


async def take_due(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> list[int]:
    """Take every slot due in the catch-up window before `now` that is not taken yet; the
    ids of the snapshots this call took (another replica may take some of them first)."""
    since = now - timedelta(days=settings.snapshot_catch_up_days)
    async with sessions() as session:
        config = await load_config(session)
        slots = due_slots(
            since,
            now,
            weekday=settings.snapshot_weekday,
            kinds=[PeriodKind(k) for k in settings.snapshot_period_kinds],
            fiscal_start_month=config.fiscal_year_start_month,
        )
        taken = await taken_instants(
            session, periods=list({s.period for s in slots}), since=since, until=now
        )
    stages = StageTable.of(config)
    ids = []
    for slot in slots:
        if (slot.period.start, slot.period.end, slot.as_of, slot.kind) in taken:
            continue
        async with sessions() as session, session.begin():
            header = await take_snapshot(
                session,
                stages=stages,
                period=slot.period,
                as_of=slot.as_of,
                kind=slot.kind,
                taken_by=SCHEDULER,
            )
        if header is not None:
            _log.info("snapshot %s of %s as of %s taken", slot.kind, slot.period.label, slot.as_of)
            ids.append(header.id)
    return ids


async def run(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Take the due snapshots now and then every `snapshot_check_seconds`, for ever."""
    while True:
        await take_due(sessions, settings, datetime.now(UTC))
        await asyncio.sleep(settings.snapshot_check_seconds)
