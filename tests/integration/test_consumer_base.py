"""The consumer base is not the forecast worker's: a toy consumer built on it in this test,
with its own group, topic, tables (in a scratch schema) and dispatch table, stores its
offsets and dead letters in its own tables and applies a batch read again only once; with
batches in flight it applies different partitions at once and each partition in order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, Identity, Integer, Table, Text, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.consumer import ConsumerSpec, StoredOffsetConsumer
from shared.consumer_store import consumer_tables
from shared.db import make_metadata
from shared.dispatch import Applied, Record
from shared.events import CanonicalEvent, RepUpserted
from shared.kafka import ensure_topics, make_admin
from shared.topics import TopicSpec
from tests.support.events import CREATED, event
from tests.support.infra import query
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REP = "com.salesops.rep.upserted.v1"
TIME = "2026-06-01T00:00:00Z"


@dataclass(frozen=True)
class Toy:
    spec: ConsumerSpec
    engine: AsyncEngine
    schema: str


class RepNames:
    """The toy's whole domain: each rep's name, first event wins."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def __call__(self, conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
        rows = []
        for ev in events:
            assert isinstance(ev.payload, RepUpserted)
            rows.append({"rep_id": ev.payload.rep_id, "name": ev.payload.name})
        stmt = insert(self.table).values(rows).on_conflict_do_nothing()
        new = (await conn.execute(stmt.returning(self.table.c.rep_id))).all()
        return Applied(new=len(new), duplicates=len(rows) - len(new))


@pytest.fixture
async def toy(database_url: str) -> AsyncIterator[Toy]:
    schema = f"toy_{uuid.uuid4().hex[:8]}"
    metadata = make_metadata(schema)
    tables = consumer_tables(metadata)
    reps = Table(
        "rep_names", metadata, Column("rep_id", Text, primary_key=True), Column("name", Text)
    )
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.run_sync(metadata.create_all)
    spec = ConsumerSpec(
        name="toy",
        group_id="toy_consumer",
        client_id="toy-worker",
        topics=(f"{schema}.reference",),
        tables=tables,
        dispatch={REP: RepNames(reps)},
    )
    try:
        yield Toy(spec=spec, engine=engine, schema=schema)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


async def test_a_second_consumer_keeps_its_offsets_and_dead_letters_in_its_own_tables(
    toy: Toy, database_url: str, kafka_bootstrap: str
) -> None:
    topic = toy.spec.topics[0]
    rep = event(REP, {"rep_id": "rep-ana", "name": "Ana"}, time=TIME)
    deal = event(CREATED, {"deal_id": "d", "name": "n", "owner_id": "r", "stage": "s"}, time=TIME)
    batch = [
        Record(topic, 0, 0, orjson.dumps(rep)),
        Record(topic, 0, 1, orjson.dumps(deal)),
        Record(topic, 1, 5, b"{not json"),
    ]
    consumer = StoredOffsetConsumer(
        engine=toy.engine,
        bootstrap=kafka_bootstrap,
        spec=toy.spec,
        max_records=10,
        check_seconds=60,
    )
    try:
        await consumer.process(batch)
        await consumer.process(batch)  # read again, as after a crash before the poll
    finally:
        await consumer.close()

    t = toy.spec.tables
    async with toy.engine.connect() as conn:
        offsets = (await conn.execute(select(t.offsets))).all()
        letters = (await conn.execute(select(t.dead_letters).order_by(t.dead_letters.c.id))).all()
        names = (await conn.execute(text(f"SELECT rep_id, name FROM {toy.schema}.rep_names"))).all()
    assert sorted((o.group_id, o.topic, o.partition, o.next_offset) for o in offsets) == [
        ("toy_consumer", topic, 0, 2),
        ("toy_consumer", topic, 1, 6),
    ]
    assert [(r.rep_id, r.name) for r in names] == [("rep-ana", "Ana")]
    assert [(le.partition, le.offset, le.event_id) for le in letters] == [
        (0, 1, deal["id"]),
        (1, 5, None),
    ], "each dead letter written once, the read-again batch found below the stored offsets"
    assert f"type: {CREATED} is not an event this consumer handles" in letters[0].reason
    assert "not JSON" in letters[1].reason
    forecast = await query(
        database_url, "SELECT id FROM forecast.dead_letters WHERE topic = :t", t=topic
    )
    assert forecast == [], "nothing of the toy's lands in the forecast worker's tables"


class Arrivals:
    """Notes each rep's number in the order transactions write them, and whether two
    batches were ever being applied at once (the first batch waits a while for a second)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.open = 0
        self.batches = 0
        self.overlapped = asyncio.Event()

    async def __call__(self, conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
        self.open += 1
        self.batches += 1
        try:
            if self.open > 1:
                self.overlapped.set()
            if self.batches == 1:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.overlapped.wait(), 5)
            rows = []
            for ev in events:
                assert isinstance(ev.payload, RepUpserted)
                partition, number = ev.payload.rep_id.split("-")[1:]
                rows.append({"part": int(partition), "number": int(number)})
            await conn.execute(insert(self.table), rows)
        finally:
            self.open -= 1
        return Applied(new=len(rows))


async def test_batches_of_different_partitions_apply_at_once_and_each_partition_in_order(
    toy: Toy, kafka_bootstrap: str
) -> None:
    topic, per_partition = toy.spec.topics[0], 60
    arrivals = Table(
        "arrivals",
        toy.spec.tables.offsets.metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("part", Integer),
        Column("number", Integer),
    )
    async with toy.engine.begin() as conn:
        await conn.run_sync(arrivals.create)
    admin = make_admin(kafka_bootstrap, client_id="toy-admin")
    await admin.start()
    try:
        await ensure_topics(admin, [TopicSpec(topic, 3)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for number in range(per_partition):
            for partition in range(3):
                rep = event(REP, {"rep_id": f"rep-{partition}-{number}", "name": "n"}, time=TIME)
                await producer.send(topic, orjson.dumps(rep), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    recorder = Arrivals(arrivals)
    consumer = StoredOffsetConsumer(
        engine=toy.engine,
        bootstrap=kafka_bootstrap,
        spec=dataclasses.replace(toy.spec, dispatch={REP: recorder}),
        max_records=7,
        check_seconds=60,
        in_flight=2,
    )

    async def written() -> list[tuple[int, int]]:
        async with toy.engine.connect() as conn:
            rows = await conn.execute(
                select(arrivals.c.part, arrivals.c.number).order_by(arrivals.c.id)
            )
            found = [(r.part, r.number) for r in rows]
        return found if len(found) >= 3 * per_partition else []

    task = asyncio.create_task(consumer.run())
    try:
        found = await eventually(written, within=90)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.close()

    assert recorder.overlapped.is_set(), "two partitions' batches were applied at once"
    for partition in range(3):
        numbers = [number for part, number in found if part == partition]
        assert numbers == list(range(per_partition)), f"partition {partition} in order, once"
