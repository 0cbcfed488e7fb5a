"""The consumer's loop reads and decodes the next batch while it applies one. A batch read
ahead under an assignment or a broker incarnation that has moved since is dropped and read
again from the stored offsets: no record is skipped, and none is applied once too often.
A record to blame in a batch decoded ahead is still dead-lettered alone.

The loop runs for real here (`StoredOffsetConsumer.run`), on a broker of the module's own
(a new incarnation is announced on it) and a toy consumer that counts each application."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topics
from shared.consumer import ConsumerSpec, StoredOffsetConsumer
from shared.dispatch import Applied
from shared.embedded import EmbeddedBroker
from shared.events import CanonicalEvent, RepUpserted
from shared.kafka import ensure_topics, make_admin, make_producer
from shared.topics import TopicSpec
from tests.support.events import event
from tests.support.scratch_schema import scratch_schema
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REP = "com.salesops.rep.upserted.v1"
RECORDS = 40
SETTLE_SECONDS = 60


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker no other test reads: these tests announce broker incarnations on it."""
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("read-ahead") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@dataclass
class Counted:
    """A toy consumer's handler: counts how often each rep's event was applied, and can act
    once, in the middle of applying the batch that holds a given rep."""

    table: Table
    at: str | None = None
    during: Callable[[], Awaitable[None]] | None = None
    poison: str | None = None

    async def __call__(self, conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
        names = [ev.payload.rep_id for ev in events if isinstance(ev.payload, RepUpserted)]
        if self.poison in names:
            raise ValueError(f"{self.poison} cannot be applied")
        stmt = insert(self.table).values([{"rep_id": n, "applied": 1} for n in names])
        applied = self.table.c.applied + 1
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["rep_id"], set_={"applied": applied})
        )
        if self.at in names and self.during is not None:
            during, self.during = self.during, None
            await during()
        return Applied(new=len(names))


@dataclass(frozen=True)
class Toy:
    spec: ConsumerSpec
    engine: AsyncEngine
    handler: Counted
    topic: str


def _applications(metadata: MetaData) -> Table:
    return Table(
        "applications",
        metadata,
        Column("rep_id", Text, primary_key=True),
        Column("applied", Integer, nullable=False),
    )


@pytest.fixture
async def toy(database_url: str) -> AsyncIterator[Toy]:
    async with scratch_schema(database_url, f"ahead_{uuid.uuid4().hex[:8]}", _applications) as db:
        handler = Counted(db.state)
        topic = f"{db.schema}.reps"
        spec = ConsumerSpec(
            name="ahead",
            group_id=f"{db.schema}_group",
            client_id="ahead-worker",
            topics=(topic,),
            tables=db.tables,
            dispatch={REP: handler},
        )
        yield Toy(spec=spec, engine=db.engine, handler=handler, topic=topic)


def _rep(n: int) -> str:
    return f"rep-{n:03d}"


async def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    """`values` in order on partition 0 of a one-partition `topic`, and a first incarnation."""
    admin = make_admin(bootstrap, client_id="ahead-admin")
    await admin.start()
    try:
        await ensure_topics(admin, [TopicSpec(topic, 1), TopicSpec(topics.INCARNATION, 1)])
    finally:
        await admin.close()
    await _send(bootstrap, topics.INCARNATION, [b"first"])
    await _send(bootstrap, topic, values)


async def _send(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = make_producer(bootstrap, client_id="ahead-producer")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


def _reps(count: int) -> list[bytes]:
    return [
        orjson.dumps(
            event(REP, {"rep_id": _rep(n), "name": f"Rep {n}"}, time="2026-06-01T00:00:00Z")
        )
        for n in range(count)
    ]


async def _run_until_read(
    toy: Toy, worker: StoredOffsetConsumer, end: int, *, incarnation: str | None = None
) -> None:
    """Run the worker's loop until its stored offset reaches `end` (stored under
    `incarnation` when given: the watch reads a new one beside the loop, so the loop may
    reach the end once before it follows it), then stop it."""
    running = asyncio.create_task(worker.run())
    offsets = toy.spec.tables.offsets

    async def read_to_the_end() -> bool:
        assert not running.done(), running.exception()
        async with toy.engine.connect() as conn:
            rows = (await conn.execute(select(offsets.c.next_offset, offsets.c.incarnation))).all()
        return [r.next_offset for r in rows] == [end] and (
            incarnation is None or [r.incarnation for r in rows] == [incarnation]
        )

    try:
        await eventually(read_to_the_end, within=SETTLE_SECONDS, interval=0.1)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()


async def _applied(toy: Toy) -> list[int]:
    async with toy.engine.connect() as conn:
        rows = await conn.execute(select(toy.handler.table).order_by(toy.handler.table.c.rep_id))
        return [r.applied for r in rows]


def _worker(toy: Toy, bootstrap: str, *, check_seconds: float) -> StoredOffsetConsumer:
    return StoredOffsetConsumer(
        engine=toy.engine,
        bootstrap=bootstrap,
        spec=toy.spec,
        max_records=5,
        check_seconds=check_seconds,
    )


async def test_a_rebalance_while_a_batch_is_applied_drops_the_batch_read_ahead(
    toy: Toy, own_broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _produce(own_broker, toy.topic, _reps(RECORDS))
    worker = _worker(toy, own_broker, check_seconds=3600)

    async def another_member_joins() -> None:
        """The group rebalances while this batch is in the database: the member is revoked
        and assigned its partition again, with the next batch already read."""
        before = worker._assignments
        intruder = AIOKafkaConsumer(
            toy.topic, bootstrap_servers=own_broker, group_id=toy.spec.group_id
        )
        await intruder.start()

        async def revoked_and_assigned_again() -> bool:
            return worker._assignments >= before + 2

        try:
            await eventually(revoked_and_assigned_again, within=SETTLE_SECONDS, interval=0.05)
        finally:
            await intruder.stop()

    toy.handler.at, toy.handler.during = _rep(12), another_member_joins
    with caplog.at_level(logging.INFO, logger="salesops.ahead.consumer"):
        await _run_until_read(toy, worker, RECORDS)

    assert toy.handler.during is None, "the rebalance happened mid-batch"
    assert any("read ahead" in r.message for r in caplog.records), "a batch was dropped"
    assert await _applied(toy) == [1] * RECORDS, "each record applied exactly once"


async def test_a_new_incarnation_drops_the_batch_read_ahead_and_reads_from_the_start(
    toy: Toy, own_broker: str
) -> None:
    await _produce(own_broker, toy.topic, _reps(RECORDS))
    worker = _worker(toy, own_broker, check_seconds=0)

    async def the_broker_is_born_again() -> None:
        await _send(own_broker, topics.INCARNATION, [f"next-{toy.topic}".encode()])

    toy.handler.at, toy.handler.during = _rep(12), the_broker_is_born_again
    await _run_until_read(toy, worker, RECORDS, incarnation=f"next-{toy.topic}")

    counts = await _applied(toy)
    again = counts.count(2)
    assert again >= 13, "what was applied before the new incarnation is applied again"
    assert counts == [2] * again + [1] * (RECORDS - again), (
        "read again from the start, nothing skipped, nothing applied a third time"
    )
    async with toy.engine.connect() as conn:
        stored = (await conn.execute(select(toy.spec.tables.offsets.c.incarnation))).scalars()
        assert stored.all() == [f"next-{toy.topic}"]


async def test_a_record_to_blame_in_a_batch_decoded_ahead_is_dead_lettered_alone(
    toy: Toy, own_broker: str
) -> None:
    values = _reps(RECORDS)
    values[7] = b"{not json"
    await _produce(own_broker, toy.topic, values)
    toy.handler.poison = _rep(23)
    worker = _worker(toy, own_broker, check_seconds=3600)

    await _run_until_read(toy, worker, RECORDS)

    applied = await _applied(toy)
    assert applied == [1] * (RECORDS - 2), "every other record applied once"
    letters = toy.spec.tables.dead_letters
    async with toy.engine.connect() as conn:
        rows = (await conn.execute(select(letters).order_by(letters.c.offset))).all()
    assert [(r.offset, r.event_id) for r in rows] == [
        (7, None),
        (23, orjson.loads(values[23])["id"]),
    ]
    assert "not JSON" in rows[0].reason
    assert f"{_rep(23)} cannot be applied" in rows[1].reason
