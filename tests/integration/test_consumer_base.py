"""The consumer base is not the forecast worker's: a toy consumer built on it in this test,
with its own group, topic, tables (in a scratch schema) and dispatch table, stores its
offsets and dead letters in its own tables and applies a batch read again only once; its
loop goes on applying while the broker's incarnation is being read, and follows a change."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Column, MetaData, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import topics
from shared.consumer import ConsumerSpec, StoredOffsetConsumer, replay_open
from shared.consumer_store import insert_dead_letters
from shared.dispatch import Applied, DeadLetter, Record, Refused
from shared.embedded import EmbeddedBroker
from shared.events import CanonicalEvent, RepUpserted
from shared.kafka import ensure_topics, make_admin, make_producer
from shared.topics import TopicSpec
from tests.support.events import CREATED, event
from tests.support.infra import query
from tests.support.scratch_schema import scratch_schema
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REP = "com.salesops.rep.upserted.v1"
TIME = "2026-06-01T00:00:00Z"


@dataclass(frozen=True)
class Toy:
    spec: ConsumerSpec
    engine: AsyncEngine
    schema: str
    reps: Table


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


def _rep_names(metadata: MetaData) -> Table:
    return Table(
        "rep_names", metadata, Column("rep_id", Text, primary_key=True), Column("name", Text)
    )


@pytest.fixture
async def toy(database_url: str) -> AsyncIterator[Toy]:
    async with scratch_schema(database_url, f"toy_{uuid.uuid4().hex[:8]}", _rep_names) as db:
        spec = ConsumerSpec(
            name="toy",
            group_id="toy_consumer",
            client_id="toy-worker",
            topics=(f"{db.schema}.reference",),
            tables=db.tables,
            dispatch={REP: RepNames(db.state)},
        )
        yield Toy(spec=spec, engine=db.engine, schema=db.schema, reps=db.state)


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


class PickyRepNames(RepNames):
    """Refuses reps named in `unknown` (its own reason, as the deal handler refuses a stage
    its configuration does not know) until they are forgotten."""

    def __init__(self, table: Table, unknown: set[str]) -> None:
        super().__init__(table)
        self.unknown = unknown

    async def __call__(self, conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
        names = [ev.payload.name for ev in events if isinstance(ev.payload, RepUpserted)]
        refused = [n for n, name in enumerate(names) if name in self.unknown]
        kept = [ev for n, ev in enumerate(events) if n not in refused]
        applied = await super().__call__(conn, kept) if kept else Applied(new=0)
        return Applied(
            new=applied.new,
            duplicates=applied.duplicates,
            refused=tuple(Refused(n, "unknown_name", f"{names[n]!r} is unknown") for n in refused),
        )


async def test_a_handler_refuses_single_events_the_rest_applies_and_a_fix_replays_them(
    toy: Toy, kafka_bootstrap: str
) -> None:
    picky = PickyRepNames(toy.reps, {"Zed"})
    spec = replace(toy.spec, dispatch={REP: picky})
    topic = spec.topics[0]
    reps = [
        event(REP, {"rep_id": f"rep-{name.lower()}", "name": name}, time=TIME)
        for name in ("Ana", "Zed", "Bo")
    ]
    consumer = StoredOffsetConsumer(
        engine=toy.engine, bootstrap=kafka_bootstrap, spec=spec, max_records=10, check_seconds=60
    )
    try:
        await consumer.process([Record(topic, 0, n, orjson.dumps(r)) for n, r in enumerate(reps)])
        # The stream read again at other offsets (a new broker life): no second letter.
        await consumer.process(
            [Record(topic, 0, 10 + n, orjson.dumps(r)) for n, r in enumerate(reps)]
        )
    finally:
        await consumer.close()

    async def state() -> tuple[list[str], list[tuple[int, str, bool]]]:
        t = spec.tables.dead_letters
        async with toy.engine.connect() as conn:
            names = await conn.execute(text(f"SELECT name FROM {toy.schema}.rep_names"))
            letters = await conn.execute(select(t).order_by(t.c.id))
            return sorted(r.name for r in names), [
                (le.offset, le.reason, le.replayed_at is None) for le in letters
            ]

    assert await state() == (["Ana", "Bo"], [(1, "unknown_name: 'Zed' is unknown", True)])

    picky.unknown.clear()
    replayed = await replay_open(
        toy.engine, spec=spec, codes=["unknown_name", "other"], log=logging.getLogger("test")
    )
    assert replayed == 1
    assert await state() == (["Ana", "Bo", "Zed"], [(1, "unknown_name: 'Zed' is unknown", False)])


async def test_letters_sharing_an_offset_are_told_apart_by_their_place_in_the_page(
    toy: Toy,
) -> None:
    """Offsets start again with each broker life: two letters of one replay page at the
    same topic, partition and offset, of which only one applies, are each decided alone."""
    picky = PickyRepNames(toy.reps, {"Zed"})
    spec = replace(toy.spec, dispatch={REP: picky})
    topic = spec.topics[0]
    zed, ana = (
        event(REP, {"rep_id": f"rep-{name.lower()}", "name": name}, time=TIME)
        for name in ("Zed", "Ana")
    )
    letters = [
        DeadLetter.of(Record(topic, 0, 7, orjson.dumps(ev)), "unknown_name: before a fix")
        for ev in (zed, ana)
    ]
    async with toy.engine.begin() as conn:
        await insert_dead_letters(conn, tables=spec.tables, letters=letters)

    replayed = await replay_open(
        toy.engine, spec=spec, codes=["unknown_name"], log=logging.getLogger("test")
    )

    t = spec.tables.dead_letters
    async with toy.engine.connect() as conn:
        rows = (await conn.execute(select(t.c.event_id, t.c.replayed_at).order_by(t.c.id))).all()
        names = (await conn.execute(text(f"SELECT name FROM {toy.schema}.rep_names"))).all()
    assert replayed == 1
    assert [(r.event_id, r.replayed_at is not None) for r in rows] == [
        (zed["id"], False),
        (ana["id"], True),
    ]
    assert [r.name for r in names] == ["Ana"]


async def test_two_transactions_storing_one_letter_at_once_store_it_once(toy: Toy) -> None:
    """As two group members applying the same batch during a rebalance: the second waits
    for the first and then finds the letter there (the unique index decides)."""
    rep = event(REP, {"rep_id": "rep-zed", "name": "Zed"}, time=TIME)
    letter = DeadLetter.of(Record(toy.spec.topics[0], 0, 3, orjson.dumps(rep)), "bad: no")
    tables = toy.spec.tables
    async with toy.engine.connect() as first, toy.engine.connect() as second:
        await first.begin()
        await second.begin()
        assert await insert_dead_letters(first, tables=tables, letters=[letter]) == [letter]
        racing = asyncio.create_task(insert_dead_letters(second, tables=tables, letters=[letter]))
        await asyncio.sleep(0.3)
        assert not racing.done(), "the second insert waits for the first transaction"
        await first.commit()
        assert await racing == []
        await second.commit()
    t = tables.dead_letters
    async with toy.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(t))).scalar_one()
    assert count == 1


class SlowIncarnationReads(StoredOffsetConsumer):
    """Every incarnation read after the first waits for `done_reading`: a read as slow as
    the test likes (a fresh Kafka client takes hundreds of milliseconds, seconds on a busy
    machine or while the broker is away)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.done_reading = asyncio.Event()
        self.reads = 0

    async def _read_incarnation(self) -> None:
        self.reads += 1
        if self.reads > 1:
            await self.done_reading.wait()
        await super()._read_incarnation()


async def test_the_loop_applies_while_the_incarnation_is_read_and_follows_a_change(
    toy: Toy, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")  # its own: it gets a new incarnation
    broker.start()
    topic = toy.spec.topics[0]
    admin = make_admin(broker.bootstrap, client_id="toy-admin")
    producer = make_producer(broker.bootstrap, client_id="toy-producer")
    consumer = SlowIncarnationReads(
        engine=toy.engine,
        bootstrap=broker.bootstrap,
        spec=toy.spec,
        max_records=10,
        check_seconds=0.05,
    )
    running: asyncio.Task[None] | None = None

    async def stored() -> list[tuple[str | None, int]]:
        t = toy.spec.tables.offsets
        async with toy.engine.connect() as conn:
            rows = await conn.execute(select(t.c.incarnation, t.c.next_offset))
            return sorted((r.incarnation, r.next_offset) for r in rows)

    try:
        await admin.start()
        await ensure_topics(admin, [TopicSpec(topic, 2), TopicSpec(topics.INCARNATION, 1)])
        await producer.start()
        await producer.send_and_wait(topics.INCARNATION, b"first", partition=0)
        running = asyncio.create_task(consumer.run())

        async def reading() -> bool:
            return consumer.reads >= 2

        await eventually(reading, interval=0.02)

        # A read is under way, and stays so: the records still go in.
        for n in range(6):
            rep = event(REP, {"rep_id": f"rep-{n}", "name": f"Rep {n}"}, time=TIME)
            await producer.send_and_wait(topic, orjson.dumps(rep), key=f"rep-{n}".encode())

        async def applied() -> bool:
            offsets = await stored()
            return sum(o for _, o in offsets) == 6 and {i for i, _ in offsets} == {"first"}

        await eventually(applied)
        assert consumer.reads == 2, "all of it while one incarnation read was waiting"
        assert consumer.incarnation == "first"

        await producer.send_and_wait(topics.INCARNATION, b"second", partition=0)
        consumer.done_reading.set()

        async def reread() -> bool:
            offsets = await stored()
            return sum(o for _, o in offsets) == 6 and {i for i, _ in offsets} == {"second"}

        # No record came after the change: offsets stored under it mean the partitions
        # were read again from the start.
        await eventually(reread)
        assert consumer.incarnation == "second"
        async with toy.engine.connect() as conn:
            names = await conn.execute(text(f"SELECT count(*) FROM {toy.schema}.rep_names"))
            assert names.scalar_one() == 6, "read again, applied once"
    finally:
        if running is not None:
            running.cancel()
            await asyncio.wait({running})
        await consumer.close()
        await producer.stop()
        await admin.close()
        broker.stop()
