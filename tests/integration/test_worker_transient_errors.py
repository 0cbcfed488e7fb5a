"""A database blip while the forecast worker applies a batch is retried, not dead-lettered.

The worker's transaction is made to wait on a table lock and its backend is terminated
while it waits, three times over (as a failover or a restarted connection pooler would);
then the lock is released. The record must be applied, and no dead letter written. The
same for a statement cancelled by its timeout: the database's condition, not the record's.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import consumer_spec
from shared.consumer import StoredOffsetConsumer
from shared.db import create_engine
from shared.dispatch import Record
from shared.settings import Settings
from tests.support.events import CREATED, event
from tests.support.infra import query

pytestmark = pytest.mark.integration

WORKER = "salesops-test-blip-worker"
TERMINATIONS = 3


def worker(engine: AsyncEngine, kafka_bootstrap: str) -> StoredOffsetConsumer:
    settings = Settings()
    return StoredOffsetConsumer(
        engine=engine,
        bootstrap=kafka_bootstrap,
        spec=consumer_spec(StageRules.of(settings.won_stages, settings.lost_stages)),
        max_records=10,
        check_seconds=60,
    )


def deal_record(prefix: str) -> tuple[str, dict[str, object], Record]:
    """A deal's creation on a topic of its own, so the offset it stores is nobody else's."""
    deal = f"{prefix}-{uuid.uuid4().hex[:8]}"
    data = {"deal_id": deal, "name": "n", "owner_id": "r", "stage": "s"}
    ev = event(CREATED, data, time="2026-06-01T00:00:00Z")
    return deal, ev, Record(f"{prefix}.{deal}", 0, 0, orjson.dumps(ev))


async def assert_applied_not_dead_lettered(
    database_url: str, deal: str, ev: dict[str, object]
) -> None:
    letters = await query(
        database_url, "SELECT reason FROM forecast.dead_letters WHERE event_id = :id", id=ev["id"]
    )
    assert letters == [], "a database condition dead-lettered a good event"
    applied = await query(
        database_url, "SELECT deal_id FROM forecast.deal_changes WHERE event_id = :id", id=ev["id"]
    )
    assert [r.deal_id for r in applied] == [deal]


async def test_terminated_backend_is_retried_not_dead_lettered(
    database_url: str, kafka_bootstrap: str
) -> None:
    deal, ev, record = deal_record("blip")
    engine = create_engine(database_url, application_name=WORKER, pool_size=2)
    consumer = worker(engine, kafka_bootstrap)
    locker = create_async_engine(database_url)
    try:
        async with (
            locker.connect() as lock,
            locker.connect() as watcher,
        ):
            # Autocommit, so that each look at pg_stat_activity is a fresh snapshot.
            await watcher.execution_options(isolation_level="AUTOCOMMIT")
            await lock.execute(text("LOCK TABLE forecast.deal_changes IN EXCLUSIVE MODE"))
            applying = asyncio.create_task(consumer.process([record]))
            terminated = 0
            for _ in range(200):
                if applying.done() or terminated == TERMINATIONS:
                    break
                waiting = await watcher.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND wait_event_type = 'Lock'"
                    ),
                    {"name": WORKER},
                )
                terminated += len(waiting.all())
                await asyncio.sleep(0.1)
            assert terminated == TERMINATIONS or applying.done()
            await lock.rollback()
        await asyncio.wait_for(applying, timeout=60)
    finally:
        await consumer.close()
        await engine.dispose()
        await locker.dispose()
    await assert_applied_not_dead_lettered(database_url, deal, ev)
    assert terminated == TERMINATIONS


async def test_a_cancelled_statement_is_retried_not_dead_lettered(
    database_url: str, kafka_bootstrap: str
) -> None:
    deal, ev, record = deal_record("cancel")
    # Every statement the worker sends is cancelled (57014) while the table is locked.
    engine = create_async_engine(
        database_url, connect_args={"server_settings": {"statement_timeout": "200"}}
    )
    consumer = worker(engine, kafka_bootstrap)
    locker = create_async_engine(database_url)
    try:
        async with locker.connect() as lock:
            await lock.execute(text("LOCK TABLE forecast.deal_changes IN EXCLUSIVE MODE"))
            applying = asyncio.create_task(consumer.process([record]))
            await asyncio.sleep(1.5)
            assert not applying.done()
            await lock.rollback()
        await asyncio.wait_for(applying, timeout=60)
    finally:
        await consumer.close()
        await engine.dispose()
        await locker.dispose()
    await assert_applied_not_dead_lettered(database_url, deal, ev)


async def test_a_dead_letter_is_written_once_when_its_transaction_is_run_again(
    database_url: str, kafka_bootstrap: str
) -> None:
    """A commit whose answer was lost is retried; the retry finds the record's offset
    stored with it and writes its dead letter no second time."""
    record = Record(f"undecodable.{uuid.uuid4().hex[:8]}", 0, 0, b"{not json")
    engine = create_async_engine(database_url)
    consumer = worker(engine, kafka_bootstrap)
    try:
        await consumer.process([record])
        await consumer.process([record])
    finally:
        await consumer.close()
        await engine.dispose()
    letters = await query(
        database_url, "SELECT reason FROM forecast.dead_letters WHERE topic = :t", t=record.topic
    )
    assert len(letters) == 1
    assert "not JSON" in letters[0].reason
