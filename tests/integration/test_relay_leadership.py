"""Relays of several API replicas on one event log: one leads and publishes, the others
stand by; a relay whose session died stops leading, and a stand-by takes over when the
leader's process ends. A leader reads the broker's incarnation beside its publishing and
checks the broker in full only when that changed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cli import run_migrations
from services.pipeline_api.events.relay import Relay
from shared import topics
from shared.db import create_engine
from shared.embedded import EmbeddedBroker
from shared.kafka import BrokerWedged, make_admin
from shared.metrics import RELAY_BACKLOG
from tests.support import infra


@pytest.fixture
def own_log() -> Iterator[str]:
    """A database of its own: the leader lock is per database, and the session stack's
    relay leads on the shared one."""
    with infra.test_database() as url:
        run_migrations(url)
        yield url


async def _append(engine: AsyncEngine, first: int, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO pipeline.events (source, event_id, type, subject, topic, "
                "partition_key, event_time, envelope) SELECT 'test://lead', 'e' || n, 't', "
                "'s', :topic, 'deal-' || (n % 5), now(), '{}'::jsonb "
                "FROM generate_series(CAST(:first AS int), :last) AS n"
            ),
            {"topic": topics.DEAL, "first": first, "last": first + count - 1},
        )


async def _all_published(engine: AsyncEngine, count: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        async with engine.connect() as conn:
            done = await conn.scalar(
                text("SELECT count(*) FROM pipeline.events WHERE published_at IS NOT NULL")
            )
        if done == count:
            return
        assert time.monotonic() < deadline, f"{done} of {count} published"
        await asyncio.sleep(0.1)


async def _one_leads(relays: list[Relay]) -> None:
    """Wait until exactly one relay leads (a relay that lost its session may win again)."""
    deadline = time.monotonic() + 15
    while sum(r.leading for r in relays) != 1:
        assert time.monotonic() < deadline, "not exactly one relay leads"
        await asyncio.sleep(0.05)


def _relay(engine: AsyncEngine, bootstrap: str = "127.0.0.1:9", **options: Any) -> Relay:
    """A relay polling quickly; the default bootstrap is a port where no broker listens."""
    settings: dict[str, Any] = {"batch_size": 10, **options}
    return Relay(
        engine=engine,
        bootstrap=bootstrap,
        poll_seconds=0.1,
        broker_check_seconds=1,
        partitions=3,
        **settings,
    )


async def test_one_relay_leads_and_a_stand_by_takes_over(own_log: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    engines = [create_engine(own_log, application_name=f"relay-{n}") for n in "ab"]
    relays = [_relay(engine, broker.bootstrap, batch_size=50) for engine in engines]
    first = asyncio.create_task(relays[0].run())
    tasks = [first]
    try:
        deadline = time.monotonic() + 15
        while not relays[0].leading:
            assert time.monotonic() < deadline, "the only relay never led"
            await asyncio.sleep(0.05)
        tasks.append(asyncio.create_task(relays[1].run()))
        await _append(engines[0], 0, 300)
        await _all_published(engines[0], 300)
        assert relays[0].leading, "the first relay leads"
        assert not relays[1].leading, "the second stands by"

        async with engines[1].connect() as conn:  # the leader's session dies
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'relay-a'"
                )
            )
        await _append(engines[1], 300, 300)
        await _all_published(engines[1], 600)
        await _one_leads(relays)

        leader = 0 if relays[0].leading else 1
        tasks[leader].cancel()  # the leader's process ends
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[leader]
        deadline = time.monotonic() + 15
        while not relays[1 - leader].leading:
            assert time.monotonic() < deadline, "the stand-by never took over"
            await asyncio.sleep(0.05)
        await _append(engines[1], 600, 300)
        await _all_published(engines[1], 900)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for engine in engines:
            await engine.dispose()
        broker.stop()


async def test_a_relay_that_stands_down_is_not_wedged(own_log: str) -> None:
    engine = create_engine(own_log, application_name="relay-wedged")
    relay = _relay(engine)
    try:
        async with relay._leadership():
            relay.wedged_since = time.monotonic()
            RELAY_BACKLOG.set(7)
            with pytest.raises(BrokerWedged):
                relay.check_wedged()
        relay.check_wedged()  # a stand-by answers ready while another replica publishes
        assert RELAY_BACKLOG._value.get() == 0, "the leader's backlog is not the stand-by's"
    finally:
        await engine.dispose()


async def test_a_leader_gone_silent_loses_the_lock(own_log: str) -> None:
    """A leader whose process hangs or whose host vanished never closes its session: the
    server ends it once idle, and the lock is free for a stand-by."""
    engine = create_engine(own_log, application_name="relay-silent")
    relay = _relay(engine, leader_idle_seconds=1)
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    try:
        async with relay._leadership():
            leading = asyncio.create_task(relay._lead())  # waits for a broker that is away
            await asyncio.sleep(2.5)
            assert not leading.done(), "a leader waiting for the broker keeps its session"
            leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leading
            assert await relay._still_leader()
            async with engine.connect() as conn:
                assert await conn.scalar(text(held)) == 1
            await asyncio.sleep(2.5)  # the leader says nothing
            async with engine.connect() as conn:
                assert await conn.scalar(text(held)) == 0, "the lock outlived its leader"
            assert not await relay._still_leader()
    finally:
        await engine.dispose()


async def test_a_new_incarnation_is_sent_on_a_fresh_producer(own_log: str, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    engine = create_engine(own_log, application_name="relay-fresh")
    relay = _relay(engine, broker.bootstrap)
    try:
        async with relay._leadership():
            await relay._connect()
            before = relay._producer
            await relay.check_broker()  # an empty broker: a new incarnation
            assert relay.incarnation is not None
            assert relay._producer is not before, "no metadata from before the restart"
    finally:
        await relay._disconnect()
        await engine.dispose()
        broker.stop()


class CountedChecks(Relay):
    """Counts its full broker checks (each reads the incarnation with a fresh client)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full_checks = 0

    async def check_broker(self) -> None:
        self.full_checks += 1
        await super().check_broker()


async def test_a_steady_leader_checks_in_full_only_when_the_broker_changed(
    own_log: str, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    engine = create_engine(own_log, application_name="relay-steady")
    relay = CountedChecks(
        engine=engine,
        bootstrap=broker.bootstrap,
        batch_size=50,
        poll_seconds=0.1,
        broker_check_seconds=0.3,
        partitions=3,
    )
    admin = make_admin(broker.bootstrap, client_id="relay-steady-admin")
    running = asyncio.create_task(relay.run())
    try:
        await _append(engine, 0, 100)
        await _all_published(engine, 100)
        first = relay.incarnation
        assert first is not None
        checks = relay.full_checks
        for n in range(10):  # many check periods of publishing, the broker unchanged
            await _append(engine, 100 + 20 * n, 20)
            await asyncio.sleep(0.3)
        await _all_published(engine, 300)
        assert relay.full_checks == checks, "an unchanged broker costs no fresh client's read"
        assert relay.incarnation == first

        await admin.start()
        await admin.delete_topics([topics.INCARNATION])  # as a broker that lost its state
        deadline = time.monotonic() + 30
        while relay.incarnation in (first, None):
            assert time.monotonic() < deadline, "the lost state was never noticed"
            await asyncio.sleep(0.05)
        assert relay.full_checks > checks
        async with engine.connect() as conn:
            republished = await conn.scalar(
                text("SELECT republished_events FROM pipeline.broker_incarnations WHERE id = :i"),
                {"i": relay.incarnation},
            )
        assert republished == 300, "the whole log goes out again"
    finally:
        running.cancel()
        await asyncio.wait({running})
        await admin.close()
        await engine.dispose()
        broker.stop()
