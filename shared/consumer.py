"""The Kafka loop every worker runs: read a batch, apply it in one transaction, repeat.

Offsets live in Postgres beside the state (the service's `consumer_offsets`, see
`shared.consumer_store`) and are where the consumer seeks on every assignment, so Kafka's
own committed offsets are never trusted. Each stored offset names the broker incarnation
it belongs to; when the relay announces a new incarnation (the broker lost its state and
the log is being republished), the consumer re-reads its partitions from the start and
dedupe drops what it already applied. The incarnation is read by a task beside the loop
(each read starts a Kafka client of its own), so the loop never waits for it: it compares
between batches and re-reads only when the incarnation changed.

Only a record's own fault dead-letters it: a record that cannot be decoded or validated,
values PostgreSQL refuses, or a plain error raised by a handler. Every other database,
pool or network error (a lost connection, an exhausted pool, a bad password, a table a
migration has not created yet, a cancelled statement) is retried with backoff, and when it
persists the loop restarts from the stored offsets: a good event is never dead-lettered
for the infrastructure's sake.

A service brings what makes it its own as a `ConsumerSpec`: its group, topics, tables and
dispatch table (`shared.dispatch`); the loop knows nothing of what the events mean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import consumer_store, topics
from shared.consumer_store import ConsumerTables
from shared.db_errors import blames_the_record
from shared.dispatch import (
    ANY_HANDLED,
    BatchOutcome,
    DeadLetter,
    Dispatch,
    Record,
    Sorted,
    Unprocessable,
    decode,
    decode_each,
    next_offsets,
    sort_batch,
)
from shared.events import CanonicalEvent
from shared.kafka import (
    ACK_SECONDS,
    AssignmentListener,
    LayoutWatch,
    abort_producer,
    backoff_sleep,
    cancelled_for_real,
    make_consumer,
    make_producer,
    read_latest,
    start_with_backoff,
    stop_quietly,
)
from shared.logging import correlation_id
from shared.metrics import CONSUMER_APPLIED, DEAD_LETTERS

INCARNATION_READ_SECONDS = 10
# Attempts at a transaction the database fails; with full-jitter backoff capped at
# 10 s they span about half a minute, longer than a failover or a backend restart.
TRANSIENT_ATTEMPTS = 8
DECODE_SLICE = 50
"""Records a read-ahead decodes between two yields to the event loop: the batch being
applied waits at most this many records' decoding (about a millisecond) for its answers."""

T = TypeVar("T")


@dataclass(frozen=True)
class ConsumerSpec:
    """One worker's consumer. `name` names its logger (`salesops.<name>.consumer`) and its
    helper clients (`<name>-incarnation`, `salesops-<name>-dlq`)."""

    name: str
    group_id: str
    client_id: str
    topics: tuple[str, ...]
    tables: ConsumerTables
    dispatch: Dispatch
    handles: str = ANY_HANDLED
    """What `dispatch` takes, as a dead letter's reason names it ("type: X is not
    <handles>"), e.g. "a deal or activity event"."""
    ignores: frozenset[str] = frozenset()
    """Types read on a subscribed topic that are another service's business: valid, counted
    as "ignored", never dead-lettered (a shared topic carries them by design)."""

    def __post_init__(self) -> None:
        if both := self.ignores & set(self.dispatch):
            raise ValueError(f"types both handled and ignored: {sorted(both)}")


async def apply_records(
    conn: AsyncConnection,
    records: Sequence[Record],
    *,
    spec: ConsumerSpec,
    decoded: Sorted | None = None,
) -> BatchOutcome:
    """Apply `records` in the caller's transaction: each handler once, with its events in
    read order, and the dead letters of what could not be decoded or what a handler refused
    stored beside them (a letter already open for the same event and reason is a duplicate).
    `decoded` is `records` sorted already (`decode_ahead`).

    The consumer stores the offsets in the same transaction, so a crash anywhere leaves
    either all of a batch or none of it."""
    outcome, _ = await _dispatch(conn, records, spec=spec, decoded=decoded)
    letters = outcome.dead_letters
    stored = await consumer_store.insert_dead_letters(conn, tables=spec.tables, letters=letters)
    outcome.duplicates += len(letters) - len(stored)
    outcome.dead_letters = stored
    return outcome


async def _dispatch(
    conn: AsyncConnection,
    records: Sequence[Record],
    *,
    spec: ConsumerSpec,
    decoded: Sorted | None = None,
) -> tuple[BatchOutcome, set[int]]:
    """Apply `records` through the dispatch table; what cannot be applied is answered as
    dead letters (in read order), not stored. Beside the outcome, the positions in `records`
    of those a handler refused: a replay tells its letters apart by them."""
    outcome = BatchOutcome()
    batch = (
        decoded
        if decoded is not None
        else sort_batch(records, spec.dispatch, handles=spec.handles, ignores=spec.ignores)
    )
    position = {id(record): n for n, record in enumerate(records)}
    refused: list[DeadLetter] = []
    refused_at: set[int] = set()
    for group in batch.groups:
        applied = await group.handler(conn, group.events)
        outcome.applied += applied.new
        outcome.duplicates += applied.duplicates
        for r in applied.refused:
            record = group.records[r.index]
            refused.append(DeadLetter.of(record, r.reason))
            refused_at.add(position[id(record)])
    outcome.ignored += batch.ignored
    outcome.dead_letters.extend(
        sorted([*batch.dead_letters, *refused], key=lambda d: (d.topic, d.partition, d.offset))
    )
    return outcome, refused_at


async def decode_ahead(records: Sequence[Record], *, spec: ConsumerSpec) -> Sorted:
    """`records` decoded and sorted as `apply_records` would, a slice at a time with the
    event loop free between slices: run while the batch before is in the database, the
    decoding fills the worker's wait for PostgreSQL instead of adding to it."""
    decoded: list[CanonicalEvent | Unprocessable] = []
    for start in range(0, len(records), DECODE_SLICE):
        chunk = records[start : start + DECODE_SLICE]
        decoded += decode_each(chunk, spec.dispatch, handles=spec.handles, ignores=spec.ignores)
        await asyncio.sleep(0)
    return sort_batch(
        records, spec.dispatch, handles=spec.handles, ignores=spec.ignores, decoded=decoded
    )


@dataclass(frozen=True)
class _ReadAhead:
    """The next batch, read and decoded while the current one is applied, with what it was
    read under: the partitions' assignment (counted by `StoredOffsetConsumer._assignments`)
    and the broker incarnation. If either moved before it is applied, its records may be
    ones a seek has since put back or behind, so it is dropped (`_reseek`)."""

    task: asyncio.Task[tuple[list[Record], Sorted]]
    assignments: int
    incarnation: str | None


def _record(letter: DeadLetter) -> Record:
    return Record(letter.topic, letter.partition, letter.offset, letter.payload.encode())


async def replay(conn: AsyncConnection, letter: DeadLetter, *, spec: ConsumerSpec) -> None:
    """Apply a dead letter again through the consumer's own dispatch, in the caller's
    transaction. Raises `Unprocessable` if it still cannot be decoded, or its handler still
    refuses it: nothing is then applied, and no second dead letter is stored."""
    record = _record(letter)
    decode(record, spec.dispatch, handles=spec.handles, ignores=spec.ignores)
    outcome, _ = await _dispatch(conn, [record], spec=spec)
    if outcome.dead_letters:
        raise Unprocessable(outcome.dead_letters[0].reason)


REPLAY_PAGE = 500
"""Dead letters replayed as one batch, in one transaction, by `replay_open`: the handlers'
set-based path, and locks held no longer than one batch of the consumer holds them."""


async def replay_open(
    engine: AsyncEngine, *, spec: ConsumerSpec, codes: Sequence[str], log: logging.Logger
) -> int:
    """Replay every open dead letter refused for one of `codes`, oldest first, a page per
    transaction (each retried on a database error, as a batch is); answer how many applied.
    What a handler still refuses stays open, as it was. A page a record spoils is replayed
    letter by letter, so one bad letter keeps only itself open.

    Letters locked by a replay already under way are skipped, not waited for: that replay
    decides them, and waiting could deadlock against it."""
    replayed = 0
    after: int | None = None
    while True:
        page = partial(_replay_next_page, engine, after=after, spec=spec, codes=codes, log=log)
        last, done = await _retrying(page, log)
        if last is None:
            return replayed
        after = last
        replayed += done


async def _replay_next_page(
    engine: AsyncEngine,
    *,
    after: int | None,
    spec: ConsumerSpec,
    codes: Sequence[str],
    log: logging.Logger,
) -> tuple[int | None, int]:
    """Replay the page of open letters after id `after` in one transaction; answer the
    page's last id (None: no letter is left) and how many of it applied."""
    async with engine.begin() as conn:
        rows = await consumer_store.open_dead_letters(
            conn, tables=spec.tables, codes=codes, after=after, limit=REPLAY_PAGE
        )
        if not rows:
            return None, 0
        letters = {row.id: consumer_store.as_letter(row) for row in rows}
        try:
            done = await _replay_page(conn, letters, spec=spec)
        except Exception as exc:
            if not blames_the_record(exc):
                raise
            log.warning("replaying a page of dead letters failed; one by one", exc_info=True)
            done = []
            for letter_id, letter in letters.items():
                try:
                    done += await _replay_page(conn, {letter_id: letter}, spec=spec)
                except Exception as exc:
                    if not blames_the_record(exc):
                        raise
                    log.warning("dead letter %d still fails; it stays open", letter_id)
        await consumer_store.mark_replayed(conn, tables=spec.tables, letter_ids=done)
        return rows[-1].id, len(done)


async def _replay_page(
    conn: AsyncConnection, letters: dict[int, DeadLetter], *, spec: ConsumerSpec
) -> list[int]:
    """Apply `letters` in a savepoint; the ids of those that applied. A letter still not
    decodable, or refused again, stays open. Refusals are matched to letters by their place
    in the page, never by topic, partition and offset: offsets start again with each broker
    life, so two letters of a page can share them."""
    ids: list[int] = []
    records: list[Record] = []
    for letter_id, letter in letters.items():
        record = _record(letter)
        try:
            decode(record, spec.dispatch, handles=spec.handles, ignores=spec.ignores)
        except Unprocessable:
            continue
        ids.append(letter_id)
        records.append(record)
    async with conn.begin_nested():
        _, refused_at = await _dispatch(conn, records, spec=spec)
    return [letter_id for n, letter_id in enumerate(ids) if n not in refused_at]


class StoredOffsetConsumer:
    """Runs one worker's consumer: a new group member whenever the partition layout changes."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bootstrap: str,
        spec: ConsumerSpec,
        max_records: int,
        check_seconds: float,
    ) -> None:
        self._engine = engine
        self._bootstrap = bootstrap
        self._dlq_producer: AIOKafkaProducer | None = None
        self._spec = spec
        self._log = logging.getLogger(f"salesops.{spec.name}.consumer")
        self._max_records = max_records
        self._check_seconds = check_seconds
        self._consumer: AIOKafkaConsumer | None = None
        self._layout: LayoutWatch | None = None
        self._replace = False
        self._incarnation_unread = False
        self.incarnation: str | None = None
        self._assignments = 0
        """The broker incarnation the loop reads in (and stores offsets under)."""
        self.announced: str | None = None
        """The incarnation the watch last read from the broker; the loop follows it."""

    async def run(self) -> None:
        await self._read_incarnation()
        self.incarnation = self.announced
        watch = asyncio.create_task(
            self._watch_incarnation(), name=f"{self._spec.name}-incarnation-watch"
        )
        try:
            while True:
                await self._consume()
        finally:
            watch.cancel()
            await asyncio.wait({watch})  # unlike `await watch`, raises only our own cancel

    async def _consume(self) -> None:
        """Run one group member until the partition layout changes (see `LayoutWatch`)."""
        spec = self._spec
        consumer = make_consumer(self._bootstrap, group_id=spec.group_id, client_id=spec.client_id)
        self._consumer = consumer
        self._layout = LayoutWatch(consumer, spec.topics)
        self._replace = False
        consumer.subscribe(
            list(spec.topics), listener=AssignmentListener(self._on_assigned, self._on_revoked)
        )
        await start_with_backoff(consumer, f"{spec.name} consumer")
        ahead: _ReadAhead | None = None
        try:
            while not self._replace:
                self._follow_incarnation(consumer)
                if self._layout.changed():
                    return
                read = ahead if ahead is not None else self._read_ahead(consumer)
                ahead = None
                records, decoded = await read.task
                if (read.assignments, read.incarnation) != (self._assignments, self.incarnation):
                    await self._reseek(consumer)
                    continue
                if records and not self._replace:  # else not read from the stored offsets
                    ahead = self._read_ahead(consumer)
                    await self.process(records, decoded)
        finally:
            if ahead is not None:
                ahead.task.cancel()
                await asyncio.gather(ahead.task, return_exceptions=True)
            await stop_quietly(consumer)

    def _read_ahead(self, consumer: AIOKafkaConsumer) -> _ReadAhead:
        """Start reading and decoding the next batch: the loop applies the current one
        meanwhile, so the worker's Python and PostgreSQL overlap instead of taking turns."""
        return _ReadAhead(
            asyncio.create_task(self._read(consumer)), self._assignments, self.incarnation
        )

    async def _read(self, consumer: AIOKafkaConsumer) -> tuple[list[Record], Sorted]:
        batch = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
        records = [
            Record(r.topic, r.partition, r.offset, r.value or b"")
            for rs in batch.values()
            for r in rs
        ]
        return records, await decode_ahead(records, spec=self._spec)

    async def _reseek(self, consumer: AIOKafkaConsumer) -> None:
        """Drop a read-ahead batch read under another assignment or incarnation, and read
        on from the stored offsets, as an assignment does: a seek since may have put its
        records back (read again) or behind, and the batch applied meanwhile stored its
        offsets already. On a database error the member is replaced (see `_on_assigned`)."""
        self._log.info("a batch read ahead was read before a reassignment; reading again")
        try:
            assigned = consumer.assignment()
            if assigned:
                await self._seek_stored(assigned)
        except Exception:
            self._log.warning(
                "cannot seek to the stored offsets; the consumer joins again as a new member",
                exc_info=True,
            )
            self._replace = True

    async def _watch_incarnation(self) -> None:
        """Read the broker's incarnation every `check_seconds`, beside the loop: a read
        starts a Kafka client of its own and takes a few hundred milliseconds (seconds
        while the broker is away), which the loop must not spend waiting between batches.
        The loop compares it with its own at every batch boundary (`_follow_incarnation`)."""
        while True:
            await asyncio.sleep(self._check_seconds)
            try:
                await self._read_incarnation()
            except asyncio.CancelledError:
                if cancelled_for_real():
                    raise
                self._log.debug("an incarnation read hit a stray cancellation; reading again")

    async def _read_incarnation(self) -> None:
        """Set `announced` from the incarnation topic; keep it when the broker is away."""
        try:
            # aiokafka retries a vanished broker forever; bound it and ask again later.
            async with asyncio.timeout(INCARNATION_READ_SECONDS):
                value = await read_latest(
                    self._bootstrap,
                    topics.INCARNATION,
                    client_id=f"{self._spec.name}-incarnation",
                )
        except Exception as exc:  # broker away: keep what we knew, the next read retries
            # Said once per outage: the broker watch reports the outage itself, and this
            # read runs every few seconds for as long as it lasts.
            level = logging.DEBUG if self._incarnation_unread else logging.WARNING
            self._log.log(level, "cannot read the broker incarnation (%r); retrying", exc)
            self._incarnation_unread = True
            return
        self._incarnation_unread = False
        self.announced = value.decode() if value else None

    def _follow_incarnation(self, consumer: AIOKafkaConsumer) -> None:
        """Re-read every assigned partition from the start if the watch read a new
        incarnation. Called between batches, so that no batch is being applied while the
        incarnation its offsets are stored under changes; costs nothing when unchanged."""
        current = self.announced
        if current == self.incarnation:
            return
        self._log.warning(
            "broker incarnation changed (%s -> %s); re-reading partitions from the start",
            self.incarnation,
            current,
        )
        self.incarnation = current
        for tp in consumer.assignment():
            _rewind(consumer, tp)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Seek every assigned partition to its stored offset. aiokafka swallows what a
        rebalance listener raises, which would leave partitions at Kafka's offsets: on any
        error the member is replaced instead (a new member is assigned, and seeks, again)."""
        assert self._layout is not None
        self._layout.assigned()  # first: the layout watch must not depend on the database
        self._assignments += 1
        try:
            await self._seek_stored(assigned)
        except Exception:
            self._log.warning(
                "cannot seek the assigned partitions to their stored offsets; "
                "the consumer joins again as a new member",
                exc_info=True,
            )
            self._replace = True

    async def _seek_stored(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._engine.connect() as conn:
            stored = await consumer_store.load_offsets(
                conn,
                tables=self._spec.tables,
                group_id=self._spec.group_id,
                partitions=[(tp.topic, tp.partition) for tp in assigned],
            )
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None and offset.incarnation == self.incarnation:
                consumer.seek(tp, offset.next_offset)
            else:
                _rewind(consumer, tp)
        self._log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # A batch read ahead of the revoked partitions is dropped unapplied (`_ReadAhead`).
        self._assignments += 1
        self._log.info("revoked %s", sorted((tp.topic, tp.partition) for tp in revoked))

    async def process(self, records: Sequence[Record], decoded: Sorted | None = None) -> None:
        """Apply a batch atomically; if a record is to blame, apply record by record and
        dead-letter only the records that fail alone. A database still failing after the
        retries is raised: the loop restarts and reads the batch again from the offsets.
        `decoded` is the batch decoded ahead (`decode_ahead`)."""
        first, last = records[0], records[-1]
        token = correlation_id.set(
            f"batch:{first.topic}/{first.partition}@{first.offset}..{last.offset}"
        )
        try:
            await self._process(records, decoded)
        finally:
            correlation_id.reset(token)

    async def _process(self, records: Sequence[Record], decoded: Sorted | None) -> None:
        try:
            outcome = await self._apply(records, decoded)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not blames_the_record(exc):  # the database: read the batch again later
                raise
            self._log.warning(
                "batch failed; applying its %d records one by one", len(records), exc_info=True
            )
            outcome = BatchOutcome()
            for record in records:
                outcome.add(await self._apply_alone(record))
        group = self._spec.group_id
        CONSUMER_APPLIED.labels(group, "applied").inc(outcome.applied)
        CONSUMER_APPLIED.labels(group, "duplicate").inc(outcome.duplicates)
        CONSUMER_APPLIED.labels(group, "ignored").inc(outcome.ignored)
        CONSUMER_APPLIED.labels(group, "dead_letter").inc(len(outcome.dead_letters))
        for letter in outcome.dead_letters:
            await self._publish_dead_letter(letter)

    async def _apply(
        self, records: Sequence[Record], decoded: Sorted | None = None
    ) -> BatchOutcome:
        async def work(conn: AsyncConnection, fresh: Sequence[Record]) -> BatchOutcome:
            # `fresh` keeps the order of `records`: of equal length, it is all of them.
            whole = decoded if len(fresh) == len(records) else None
            return await apply_records(conn, fresh, spec=self._spec, decoded=whole)

        return await self._once(records, work)

    async def _once(
        self,
        records: Sequence[Record],
        work: Callable[[AsyncConnection, Sequence[Record]], Awaitable[BatchOutcome]],
    ) -> BatchOutcome:
        """Do `work` for the records not applied yet and store their offsets, in one
        transaction, retried on a database error. A record below its partition's stored
        offset is done: an attempt whose commit succeeded but whose answer was lost left
        it there, and the retry must not write its dead letter twice."""

        async def attempt() -> BatchOutcome:
            async with self._engine.begin() as conn:
                fresh = await self._not_applied(conn, records)
                outcome = await work(conn, fresh) if fresh else BatchOutcome()
                offsets = next_offsets(fresh)
                await consumer_store.store_offsets(
                    conn,
                    tables=self._spec.tables,
                    group_id=self._spec.group_id,
                    offsets=offsets,
                    incarnation=self.incarnation,
                )
            return outcome

        return await _retrying(attempt, self._log)

    async def _not_applied(self, conn: AsyncConnection, records: Sequence[Record]) -> list[Record]:
        stored = await consumer_store.load_offsets(
            conn,
            tables=self._spec.tables,
            group_id=self._spec.group_id,
            partitions={(r.topic, r.partition) for r in records},
        )

        def applied(record: Record) -> bool:
            offset = stored.get((record.topic, record.partition))
            return (
                offset is not None
                and offset.incarnation == self.incarnation
                and record.offset < offset.next_offset
            )

        return [record for record in records if not applied(record)]

    async def _apply_alone(self, record: Record) -> BatchOutcome:
        token = correlation_id.set(f"{record.topic}/{record.partition}/{record.offset}")
        try:
            return await self._apply([record])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not blames_the_record(exc):
                raise
            self._log.warning("record cannot be applied; dead-lettering it", exc_info=True)
            letter = DeadLetter.of(record, f"{type(exc).__name__}: {exc}")

            async def store_letter(conn: AsyncConnection, _: Sequence[Record]) -> BatchOutcome:
                stored = await consumer_store.insert_dead_letters(
                    conn, tables=self._spec.tables, letters=[letter]
                )
                return BatchOutcome(duplicates=1 - len(stored), dead_letters=stored)

            return await self._once([record], store_letter)
        finally:
            correlation_id.reset(token)

    async def _publish_dead_letter(self, letter: DeadLetter) -> None:
        """Tell DLQ subscribers; the table row is the durable record, this is a notification.

        A producer that failed is aborted, not reused, so it cannot resend into a broker
        that restarted meanwhile (see `shared.kafka.make_producer`)."""
        topic = topics.dlq(letter.topic)
        DEAD_LETTERS.labels(topic).inc()
        try:
            async with asyncio.timeout(ACK_SECONDS):
                if self._dlq_producer is None:
                    producer = make_producer(
                        self._bootstrap, client_id=f"salesops-{self._spec.name}-dlq"
                    )
                    self._dlq_producer = producer
                    await producer.start()
                await self._dlq_producer.send_and_wait(
                    topic,
                    value=letter.payload.encode(),
                    headers=[("reason", letter.reason.encode()[:1000])],
                )
        except Exception:
            self._log.warning("could not publish to %s; the dead letter is in the table", topic)
            await self.close()

    async def close(self) -> None:
        producer, self._dlq_producer = self._dlq_producer, None
        if producer is not None:
            await abort_producer(producer)


async def _retrying(transaction: Callable[[], Awaitable[T]], log: logging.Logger) -> T:
    """Run `transaction`, again after a database error that does not blame the record, up
    to TRANSIENT_ATTEMPTS times; the record's own fault, or the last attempt's, is raised."""
    attempt = 1
    while True:
        try:
            return await transaction()
        except Exception as exc:
            if attempt >= TRANSIENT_ATTEMPTS or blames_the_record(exc):
                raise
            log.warning("database error (attempt %d); retrying: %s", attempt, exc)
        await backoff_sleep(attempt)
        attempt += 1


def _rewind(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    """Read `tp` from its first record.

    `seek_to_beginning` waits for a ListOffsets answer that can stall while a restarted
    broker recreates its topics; offset 0 needs no round trip, and where retention has
    moved the log start past it, `auto_offset_reset="earliest"` lands on the first record.
    """
    consumer.seek(tp, 0)
