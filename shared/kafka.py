"""aiokafka producer and consumer plumbing shared by the relay and the workers.

The embedded broker (Tansu) has no idempotent producer and no transactions, so producers
here never ask for them; consumers get exactly-once *effects* by storing offsets in the same
Postgres transaction as their state, and by deduping on event identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.topics import TopicSpec

_log = logging.getLogger("salesops.kafka")


class Startable(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def backoff_sleep(attempt: int, *, base: float = 0.2, cap: float = 10.0) -> None:
    """Full-jitter exponential backoff, so many replicas do not reconnect in lockstep."""
    await asyncio.sleep(random.uniform(0, min(cap, base * 2**attempt)))


async def start_with_backoff(client: Startable, what: str) -> None:
    """Start a client, retrying until the broker answers (it may start after we do)."""
    attempt = 0
    while True:
        try:
            await client.start()
            return
        except KafkaError as exc:
            # Said once: a broker that stays away would otherwise be reported every retry.
            level = logging.WARNING if attempt == 0 else logging.DEBUG
            _log.log(level, "%s cannot reach the broker (%s); retrying", what, exc)
            attempt += 1
            await backoff_sleep(attempt)


def cancelled_for_real() -> bool:
    """Whether the running task is being cancelled, as opposed to having caught a stray
    `CancelledError` that aiokafka leaks from its own fetch task when a broker vanishes
    (`AIOKafkaConsumer.stop()` does this). Loops must end only on a real cancellation."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def stop_quietly(client: Startable) -> None:
    """Stop a client whose broker may be gone, never turning its failure into ours."""
    try:
        async with asyncio.timeout(10):
            await client.stop()
    except asyncio.CancelledError:
        if cancelled_for_real():
            raise
    except Exception as exc:
        _log.debug("stopping %s failed: %r", type(client).__name__, exc)


# aiokafka resends a failed batch after this pause. Callers wait at most ACK_SECONDS for
# acknowledgements and then abort the producer, so a batch never gets that second send.
RETRY_BACKOFF_MS = 5000
ACK_SECONDS = 4.0


def make_producer(bootstrap: str, *, client_id: str) -> AIOKafkaProducer:
    """A producer whose batches are sent once per connection, never re-sent across an outage.

    A batch that aiokafka re-sends to a broker restarted in the meantime corrupts the
    embedded broker: Tansu 0.6 stores it but never advances that partition's offsets, so
    every later produce to the partition fails and consumers stop at it. The long retry
    pause plus `abort_producer` after `ACK_SECONDS` keeps such resends from ever going out;
    callers resend from their own durable store instead.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=RETRY_BACKOFF_MS,
        enable_idempotence=False,
    )


def halt_producer(producer: AIOKafkaProducer) -> None:
    """Stop a producer from sending anything more, at once (no await in between).

    Cancels aiokafka's sender task (a private attribute of aiokafka 0.14, pinned): batches
    not yet acknowledged are never sent again, whatever the caller does next.
    """
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and not task.done():
        task.cancel()


async def abort_producer(producer: AIOKafkaProducer) -> None:
    """Close a producer and drop what it has not delivered, instead of flushing it.

    `stop()` flushes, which would send pending batches (and their retries) to whatever broker
    answers next, possibly a restarted one; and once halted, it would wait for the sender's
    in-flight requests (up to the request timeout). So: halt, then close the connections
    ourselves, bounded, and mark the producer closed (aiokafka 0.14's `_closed`, pinned).
    """
    halt_producer(producer)
    producer._closed = True
    try:
        async with asyncio.timeout(5):
            await producer.client.close()
    except asyncio.CancelledError:
        if cancelled_for_real():
            raise
    except Exception as exc:
        _log.debug("closing an aborted producer failed: %r", exc)


def make_admin(bootstrap: str, *, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)


async def existing_topics(admin: AIOKafkaAdminClient) -> set[str]:
    return set(await admin.list_topics())


async def ensure_topics(admin: AIOKafkaAdminClient, specs: Iterable[TopicSpec]) -> None:
    present = await existing_topics(admin)
    missing = [s for s in specs if s.name not in present]
    if not missing:
        return
    with contextlib.suppress(TopicAlreadyExistsError):
        await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=1,
                    topic_configs=dict(s.configs),
                )
                for s in missing
            ]
        )
    _log.info("created topics %s", [s.name for s in missing])


class AssignmentListener(ConsumerRebalanceListener):
    """Hands partition changes to the owner of the consumer so it can seek from its store."""

    def __init__(
        self,
        on_assigned: Callable[[set[TopicPartition]], Awaitable[None]],
        on_revoked: Callable[[set[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


class BrokerAway(RuntimeError):
    """The broker does not answer (readiness reports it by this name)."""


class BrokerWedged(RuntimeError):
    """The broker answers but a partition no longer takes records."""


class _QuietWhileAway(logging.Filter):
    """Drops aiokafka's own records while no bootstrap server of a watched broker answers:
    each client logs every failed reconnection, many a second, and the watch says it once.
    `away` holds the brokers muted (a probe failed), `said` those reported unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.away: set[str] = set()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.away and record.name.startswith("aiokafka"))


_QUIET = _QuietWhileAway()

# Failed probes in a row before a broker counts as away: one probe can fail on a loaded
# machine (a stalled event loop outlasts its timeout) while the broker answers fine.
AWAY_AFTER = 2


class BrokerWatch:
    """Whether the broker answers, probed every `interval` seconds and said once per change
    (once per process: the services of `salesops dev` share the saying): one warning when
    it goes away, one line when it is back, and `check()` for readiness. Away means
    `AWAY_AFTER` probes in a row found no bootstrap server answering; aiokafka is muted
    from the first failed probe, so nothing of it is logged while the outage is reported."""

    def __init__(self, bootstrap: str, *, interval: float = 1.0) -> None:
        self._bootstrap = bootstrap
        self._interval = interval
        self._failed = 0
        self.away_since: float | None = None

    async def run(self) -> None:
        for handler in logging.getLogger().handlers:
            if _QUIET not in handler.filters:
                handler.addFilter(_QUIET)
        try:
            while True:
                await self.probe()
                await asyncio.sleep(self._interval)
        finally:
            _QUIET.away.discard(self._bootstrap)
            _QUIET.said.discard(self._bootstrap)

    async def probe(self) -> None:
        try:
            async with asyncio.timeout(max(self._interval, 1.0)):
                await broker_reachable(self._bootstrap)
        except (OSError, TimeoutError) as exc:
            self._failed += 1
            _QUIET.away.add(self._bootstrap)
            if self._failed < AWAY_AFTER:
                return
            if self.away_since is None:
                self.away_since = time.monotonic()
            if self._bootstrap not in _QUIET.said:  # another service's watch may have said it
                _QUIET.said.add(self._bootstrap)
                _log.warning(
                    "the Kafka broker at %s is unreachable (%s): events wait in the event log "
                    "and are published when it is back; Kafka client errors are muted until then",
                    self._bootstrap,
                    type(exc).__name__,
                )
            return
        self._failed = 0
        _QUIET.away.discard(self._bootstrap)
        if self._bootstrap in _QUIET.said and self.away_since is not None:
            _QUIET.said.discard(self._bootstrap)
            _log.warning(
                "the Kafka broker at %s is reachable again after %.0f s",
                self._bootstrap,
                time.monotonic() - self.away_since,
            )
        self.away_since = None

    def check(self) -> None:
        if self.away_since is not None:
            raise BrokerAway(
                f"unreachable for {time.monotonic() - self.away_since:.0f} s: {self._bootstrap}"
            )


async def broker_reachable(bootstrap: str) -> None:
    """Raise unless some bootstrap server accepts a TCP connection (for readiness and the
    wedge count; the caller bounds the time). One server down of several is no outage:
    the clients bootstrap from any. All are asked at once, so one that never answers
    cannot use up the caller's time."""
    tries = [asyncio.ensure_future(_accepts(server)) for server in bootstrap.split(",")]
    try:
        refused: OSError | None = None
        for attempt in asyncio.as_completed(tries):
            try:
                await attempt
            except OSError as exc:
                refused = exc
            else:
                return
        assert refused is not None
        raise refused
    finally:
        for attempt in tries:
            attempt.cancel()


async def _accepts(server: str) -> None:
    host, _, port = server.strip().rpartition(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.close()
    await writer.wait_closed()


METADATA_MAX_AGE_MS = 3000


class LayoutWatch:
    """Tells a subscribed consumer's owner that a topic's partition count changed.

    A restarted embedded broker re-creates topics with whatever partition count the first
    client to ask gets (Tansu auto-creates with its own default), and a member that joined
    with its cached layout keeps the partitions it was given: Tansu 0.6 answers a rejoin
    with the group's first assignment, so the records of every other partition are never
    read. The consumer's metadata refreshes every `METADATA_MAX_AGE_MS`; when it differs
    from the layout the assignment was made from, the owner must replace the consumer (a
    new member gets a fresh assignment).
    """

    def __init__(self, consumer: AIOKafkaConsumer, topics: Sequence[str]) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._assigned_from: dict[str, int] | None = None

    def _layout(self) -> dict[str, int]:
        return {t: len(self._consumer.partitions_for_topic(t) or ()) for t in self._topics}

    def assigned(self) -> None:
        """Call from the rebalance listener. Only the first assignment's layout counts:
        aiokafka rejoins by itself when it sees a new layout, and Tansu answers with the
        old assignment, so a later assignment proves nothing."""
        if self._assigned_from is None:
            self._assigned_from = self._layout()

    def changed(self) -> bool:
        if self._assigned_from is None:
            return False
        layout = self._layout()
        if layout == self._assigned_from:
            return False
        _log.warning(
            "partition counts changed (%s -> %s); the consumer joins again as a new member",
            self._assigned_from,
            layout,
        )
        return True


FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold a fetch that finds no record. Tansu holds it that long
even when records arrive meanwhile, so this bounds how late a consumer sees a record it
was already waiting for (aiokafka's default, 500 ms, was half of the 1 s freshness
target; see benchmarks/freshness.py). An idle consumer asks 20 times a second."""


def make_consumer(bootstrap: str, *, group_id: str, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_uncommitted",
        max_poll_interval_ms=300000,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        # 6 s is Kafka's default minimum; Tansu also makes a first join wait half of it.
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        # A restarted embedded broker re-creates topics with its own partition count
        # (whoever asks first gets Tansu's default): refreshing metadata this often lets
        # `LayoutWatch` see the new partitions within seconds, not aiokafka's five minutes.
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


async def read_latest(
    bootstrap: str, topic: str, *, client_id: str, empty_after_s: float = 4.0
) -> bytes | None:
    """The value of the last record of a one-partition topic, reading it from the start.

    Tansu under-reports high watermarks, so we read rather than trusting end offsets; the
    topic this serves holds one record per broker incarnation, a handful at most. A fetch
    that returns nothing may just be slow, so "empty" is only concluded after
    `empty_after_s` without a record; once records came, an empty fetch means the end.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False
    )
    try:
        await consumer.start()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        last: bytes | None = None
        give_up = time.monotonic() + empty_after_s
        while True:
            batch = await consumer.getmany(tp, timeout_ms=300)
            records = batch.get(tp, [])
            if records:
                last = records[-1].value
            elif last is not None or time.monotonic() > give_up:
                return last
    finally:
        await stop_quietly(consumer)


async def end_offsets(
    bootstrap: str, topics: Sequence[str], *, client_id: str
) -> dict[tuple[str, int], int]:
    """The broker's end offset (the next offset it will write) of every partition of
    `topics`, as of this call; a `LookupError` when a topic does not exist yet, since then
    nobody can say what a consumer of it still has to read. One short-lived client: a
    caller asks now and then, not per record. Callers bound it with a timeout (aiokafka
    retries a vanished broker)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, enable_auto_commit=False
    )
    try:
        await consumer.start()
        await consumer.topics()
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise LookupError(f"topic {topic} does not exist yet")
            partitions += [TopicPartition(topic, n) for n in numbers]
        ends = await consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await stop_quietly(consumer)
