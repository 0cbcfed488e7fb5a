"""The scheduled snapshots: a background task of the forecast worker that takes the due
slots (`schedule.due_slots`) not taken yet, each frozen as of its slot's instant.

`take_due(now)` is one step, and the whole of the logic: the loop only calls it every
`SALESOPS_SNAPSHOT_CHECK_SECONDS`. A worker that was down takes what it missed in the last
`SALESOPS_SNAPSHOT_CATCH_UP_DAYS` when it starts; a slot is looked up first, so a step
with nothing due is one small indexed query.

A snapshot is never recomputed, so a slot is taken only when its projection is complete:
its instant is at least `SALESOPS_SNAPSHOT_SETTLE_SECONDS` old (events of before it still
in the relay's backlog have reached the broker), and the forecast consumer's stored
offsets of the broker's current life (its incarnation) have reached the broker's end
offsets of its topics, read in this step, so after every due slot's instant. A worker
catching up after a restart, a rewind or an outage takes nothing until it has caught up;
a broker that cannot be read takes nothing this step either. Each slot is its own
transaction: one that fails is logged, counted (`salesops_forecast_snapshots_failed_total`)
and tried again at the next step, and the slots after it are still taken.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.config.repository import load_config
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.dispatch import SUBSCRIBED
from services.forecast_worker.snapshots.repository import (
    consumer_positions,
    take_snapshot,
    taken_instants,
)
from services.forecast_worker.snapshots.schedule import Slot, caught_up, due_slots
from shared import topics
from shared.kafka import end_offsets, read_latest
from shared.metrics import SNAPSHOTS_FAILED
from shared.periods import PeriodKind
from shared.settings import Settings

SCHEDULER = "scheduler"
"""`taken_by` of the scheduled snapshots."""
BROKER_READ_SECONDS = 15.0
"""How long a step waits for the broker's end offsets before it takes nothing."""

_log = logging.getLogger(__name__)


async def consumer_caught_up(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> bool:
    """Whether the forecast consumer has applied everything its topics held now, in this
    broker life; False when the broker cannot be read. The broker is read before the stored
    offsets, which only grow, so a True means everything up to this call is in the
    projection."""
    bootstrap = settings.require_kafka()
    try:
        async with asyncio.timeout(BROKER_READ_SECONDS):
            life = await read_latest(
                bootstrap, topics.INCARNATION, client_id="forecast-snapshots-incarnation"
            )
            ends = await end_offsets(bootstrap, SUBSCRIBED, client_id="forecast-snapshots")
    except Exception as exc:
        _log.warning("cannot read the broker's end offsets (%r); no snapshot this step", exc)
        return False
    incarnation = life.decode() if life else None
    async with sessions() as session:
        stored = await consumer_positions(session, partitions=ends.keys(), incarnation=incarnation)
    return caught_up(ends, stored)


async def take_due(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> list[int]:
    """Take every slot due in the catch-up window before `now` (and settled) that is not
    taken yet, once the consumer has caught up; the ids of the snapshots this call took
    (another replica may take some of them first)."""
    since = now - timedelta(days=settings.snapshot_catch_up_days)
    settled = now - timedelta(seconds=settings.snapshot_settle_seconds)
    async with sessions() as session:
        config = await load_config(session)
        slots = due_slots(
            since,
            settled,
            weekday=settings.snapshot_weekday,
            kinds=[PeriodKind(k) for k in settings.snapshot_period_kinds],
            fiscal_start_month=config.fiscal_year_start_month,
        )
        taken = await taken_instants(
            session, periods=list({s.period for s in slots}), since=since, until=settled
        )
    missing = [s for s in slots if (s.period.start, s.period.end, s.as_of, s.kind) not in taken]
    if not missing:
        return []
    if not await consumer_caught_up(sessions, settings):
        _log.info("%d snapshots due; waiting for the forecast consumer to catch up", len(missing))
        return []
    stages = StageTable.of(config)
    ids = []
    for slot in missing:
        taken_id = await _take(sessions, stages, slot)
        if taken_id is not None:
            ids.append(taken_id)
    return ids


async def _take(
    sessions: async_sessionmaker[AsyncSession], stages: StageTable, slot: Slot
) -> int | None:
    """One slot in its own transaction; a failure is logged and counted, not raised, so it
    holds back no other slot (the next step tries it again)."""
    try:
        async with sessions() as session, session.begin():
            header = await take_snapshot(
                session,
                stages=stages,
                period=slot.period,
                as_of=slot.as_of,
                kind=slot.kind,
                taken_by=SCHEDULER,
            )
    except Exception:
        SNAPSHOTS_FAILED.labels(slot.kind).inc()
        _log.exception(
            "snapshot %s of %s as of %s failed; the next step tries it again",
            slot.kind,
            slot.period.label,
            slot.as_of,
        )
        return None
    if header is None:
        return None
    _log.info("snapshot %s of %s as of %s taken", slot.kind, slot.period.label, slot.as_of)
    return header.id


async def run(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Take the due snapshots now and then every `snapshot_check_seconds`, for ever."""
    while True:
        await take_due(sessions, settings, datetime.now(UTC))
        await asyncio.sleep(settings.snapshot_check_seconds)
