"""Publish stored events to Kafka, and republish them if the broker forgets.

The relay takes unpublished rows in log order, sends them keyed by deal, and marks them
published in the same transaction once the broker has acknowledged every one. Its SQL is in
repository.py.

One relay at a time: every API replica runs one, but only the holder of a PostgreSQL
session advisory lock publishes; the others stand by and try the lock every poll. The
leader claims and marks rows on the very session that holds the lock, and stands down as
soon as that session is gone, so it cannot mark anything after a stand-by took over. Two
relays sending at once would interleave their batches and put a deal's later events before
its earlier ones; one sender keeps log order per deal for any number of replicas.

Sends are never retried by the Kafka client: a batch unacknowledged after `ACK_SECONDS`
aborts the producer, and the rows, still unpublished, go out again on a fresh connection
after the broker check (see `shared.kafka.make_producer` for the broker bug this avoids).

Broker loss: the embedded broker keeps nothing across a restart. The relay writes one record
per broker incarnation to a sentinel topic; when that record is gone, the broker has lost
its state, so the relay records a new incarnation, marks the whole log unpublished and sends
it again. Consumers see the new incarnation, re-read from the start, and dedupe by event id.

A row the Kafka client refuses before sending it (larger than the producer may send, or
not encodable) would otherwise be retried forever and hold back every row after it: the
relay sets it aside as unpublishable with its error (`GET /v1/events/unpublishable`), and
the rows after it flow. Replayed once fixed, it goes out after the rows that passed it, so
for its deal it arrives late; the deal fold orders by event time, not arrival.

Anything the broker answers is the broker's condition, never one row's: a refused produce
request fails every record it carried (a policy, a timestamp or format rule, a checksum),
and the next request to the same partition may succeed, so setting rows aside, or resending
them one by one, would publish a deal's later events before its earlier ones. The whole
batch stays in the log; the producer is aborted and the batch goes out again after a
back-off, in log order.

A wedged broker (it answers, but the broker itself fails publishing `wedged_after` times
in a row over at least `wedged_seconds`) is reported once and in readiness; under `salesops
dev` the relay asks the embedded broker's supervisor for a new broker, which is then a lost
state like any other. Only the broker's own failures count (an error it answered, a batch it
did not acknowledge): a database error or a broker that is away is no wedge, and neither is
anything in the first `wedged_seconds` of a new incarnation, while topics are being created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.pipeline_api.events import repository
from shared import topics
from shared.embedded import request_restart, supervised_broker_pid
from shared.kafka import (
    ACK_SECONDS,
    BrokerWedged,
    abort_producer,
    backoff_sleep,
    broker_reachable,
    cancelled_for_real,
    ensure_topics,
    existing_topics,
    halt_producer,
    make_admin,
    make_producer,
    read_latest,
    start_with_backoff,
)
from shared.metrics import (
    BROKER_RESETS,
    RELAY_BACKLOG,
    RELAY_LEADER,
    RELAY_PUBLISHED,
    RELAY_SET_ASIDE,
    RELAY_UNPUBLISHABLE,
)

_log = logging.getLogger("salesops.relay")

# Longest a relay cycle (a broker check plus one batch) may take before it is abandoned.
CYCLE_SECONDS = 30
# Longest a check that the leader's connection still lives may take.
_ALIVE_SECONDS = 5
# Raised by the Kafka client for one row before anything is sent: larger than
# `max_request_size` (`MessageSizeTooLargeError` from `send()`), or a value it cannot
# encode. The same row fails the same way on any connection.
_REFUSED_BEFORE_SENDING = (MessageSizeTooLargeError, ValueError, TypeError)

T = TypeVar("T")


def refused_before_sending(exc: BaseException) -> bool:
    """Whether `send()` refused the row itself, rather than the broker (away, slow, wedged,
    refusing a whole request) failing it. Only this sets a row aside."""
    return isinstance(exc, _REFUSED_BEFORE_SENDING)


class BrokerRefused(Exception):
    """The broker failed records of a batch; the batch stays in the log and is sent again."""

    def __init__(self, failed: Sequence[BaseException], sent: int) -> None:
        kinds = sorted({type(exc).__name__ for exc in failed})
        super().__init__(
            f"the broker failed {len(failed)} of {sent} records ({', '.join(kinds)}: "
            f"{failed[0]}); they stay in the log and go out again after a back-off"
        )


class Unacknowledged(Exception):
    """The broker did not acknowledge what was sent within ACK_SECONDS."""


def broker_fault(exc: BaseException) -> bool:
    """Whether a failed cycle is the broker's own doing (an error it answered, a request it
    refused, a batch it did not acknowledge): only these can show a wedged partition."""
    return isinstance(exc, (KafkaError, BrokerRefused, Unacknowledged))


class BatchLimit:
    """How many rows a batch claims. A slow broker that cannot acknowledge a full batch
    within ACK_SECONDS would fail the same batch forever: the limit halves after each
    unacknowledged batch, so smaller ones get through, and doubles back, up to `most`,
    after `GROW_AFTER` acknowledged batches in a row."""

    GROW_AFTER = 4

    def __init__(self, most: int) -> None:
        self.most = most
        self.now = most
        self._acknowledged = 0

    def shrink(self) -> None:
        self.now = max(1, self.now // 2)
        self._acknowledged = 0

    def grow(self) -> None:
        self._acknowledged += 1
        if self._acknowledged >= self.GROW_AFTER:
            self.now = min(self.most, self.now * 2)
            self._acknowledged = 0


class Relay:
    """Owns its Kafka clients: aiokafka can wedge a send to a topic that vanished with a
    restarted broker, so every cycle is time-bounded and a failed cycle gets new clients."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        bootstrap: str,
        batch_size: int,
        poll_seconds: float,
        broker_check_seconds: float,
        partitions: int,
        wedged_after: int = 3,
        wedged_seconds: float = 30.0,
        leader_idle_seconds: float = 15.0,
        restart_file: Path | None = None,
    ) -> None:
        self._engine = engine
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._bootstrap = bootstrap
        self._batch = BatchLimit(batch_size)
        self._poll_seconds = poll_seconds
        self._broker_check_seconds = broker_check_seconds
        self._partitions = partitions
        self._wake = asyncio.Event()
        self._last_check = 0.0
        self._leader: AsyncConnection | None = None
        # Above every pause of a live leader (a poll, a back-off): see
        # `repository.hold_leader_session`.
        self._leader_idle_ms = int(1000 * max(leader_idle_seconds, 3 * poll_seconds))
        self._wedged_after = wedged_after
        self._restart_file = restart_file
        self._wedged_seconds = wedged_seconds
        self._failures = 0
        self._failing_since = 0.0
        self._suspect: int | None = None
        self._settling_until = 0.0
        self.wedged_since: float | None = None
        self.incarnation: str | None = None
        self._announced: str | None = None
        """The incarnation the watch (`_watch_broker`) last read."""
        self._checked = False
        """Whether `check_broker` ran since this relay took the lead or a cycle failed:
        only then may the watch's reading stand in for it."""

    @property
    def leading(self) -> bool:
        """Whether this relay holds the leader lock (only the leader publishes)."""
        return self._leader is not None

    def wake(self) -> None:
        """Called after an intake commit, so new events go out without waiting for a poll."""
        self._wake.set()

    async def run(self) -> None:
        watch = asyncio.create_task(self._watch_broker(), name="relay-broker-watch")
        try:
            while True:
                async with self._leadership():
                    await self._lead()
        finally:
            watch.cancel()
            await asyncio.wait({watch})  # unlike `await watch`, raises only our own cancel
            await self._disconnect()

    async def _watch_broker(self) -> None:
        """Every `broker_check_seconds`, while leading, count the backlog and read the
        broker's incarnation, beside the publishing loop: the read starts a Kafka client of
        its own and takes a few hundred milliseconds, which no event should wait for. The
        loop compares the reading with its own (`_scheduled_check`)."""
        while True:
            await asyncio.sleep(self._broker_check_seconds)
            if not self.leading:
                continue
            try:
                # Bounded: aiokafka retries a vanished broker forever.
                async with asyncio.timeout(CYCLE_SECONDS):
                    await self._count_backlog()
                    value = await read_latest(
                        self._bootstrap, topics.INCARNATION, client_id="relay-watch"
                    )
            except asyncio.CancelledError:
                if cancelled_for_real():
                    raise
            except Exception as exc:  # the cycle's own failure and check say what matters
                _log.debug("the relay's broker watch could not read (%r)", exc)
            else:
                self._announced = value.decode() if value else None

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[None]:
        """Wait until this relay holds the leader lock; hold it, on its own connection,
        until the block ends. Closing that connection is what releases the lock."""
        standing_by = False
        while True:
            conn = await self._engine.connect()
            try:
                if await repository.try_lead(conn):
                    await repository.hold_leader_session(conn, idle_ms=self._leader_idle_ms)
                    await conn.commit()
                    break
                await conn.close()
            except BaseException:
                await _drop(conn)
                raise
            if not standing_by:
                _log.info("relay standing by: another replica's relay publishes")
                standing_by = True
            await asyncio.sleep(self._poll_seconds)
        _log.info("relay leads: this replica publishes the event log")
        self._leader = conn
        RELAY_LEADER.set(1)
        self._recheck()  # the previous leader may have left a broker unchecked
        try:
            yield
        finally:
            self._stand_down()
            await _drop(conn)

    def _recheck(self) -> None:
        """Have the next cycle run `check_broker` in full before it publishes anything."""
        self._last_check = 0.0
        self._checked = False

    async def _scheduled_check(self) -> None:
        """The check every `broker_check_seconds`. In full (`check_broker`) after a failure
        or a change of leader, when the watch read another incarnation than this relay's,
        or when the broker lacks the incarnation topic; otherwise only that look at the
        topic list (one metadata request on the admin client), so a steady relay never
        waits for a fresh client's read. A broker that lost its state meanwhile is found
        by the next full check, a watch period later at most; what the relay published
        to it before then goes out again with the whole log."""
        if self._checked and self._announced == self.incarnation:
            _, admin = self._clients()
            if topics.INCARNATION in await existing_topics(admin):
                self._last_check = time.monotonic()
                return
        await self.check_broker()

    def _stand_down(self) -> None:
        """Forget what only the leader knows: a stand-by publishes nothing, so it is not
        wedged (another replica may publish fine) and reports no backlog of its own."""
        self._leader = None
        self._failures = 0
        self.wedged_since = None
        RELAY_LEADER.set(0)
        RELAY_BACKLOG.set(0)
        RELAY_SET_ASIDE.set(0)

    async def _lead(self) -> None:
        """Publish until the leader connection is lost."""
        attempt = 0
        while True:
            try:
                if not await self._connect_leading():
                    return
                async with asyncio.timeout(CYCLE_SECONDS):
                    if time.monotonic() - self._last_check >= self._broker_check_seconds:
                        await self._scheduled_check()
                    sent = await self.publish_batch()
                attempt = 0
                if sent:
                    self._batch.grow()
            except asyncio.CancelledError:
                if cancelled_for_real():
                    raise
                _log.warning("relay cycle hit a stray cancellation; reconnecting")
                await self._disconnect()
                self._recheck()
                if not await self._still_leader():
                    return
                continue
            except Exception as exc:  # broker or database away: the log keeps the events
                _log.warning("relay cycle failed; reconnecting and retrying", exc_info=True)
                if isinstance(exc, Unacknowledged):
                    self._batch.shrink()
                await self._disconnect()
                # The broker may have restarted: check it (and create the topics)
                # before anything is produced to it again.
                self._recheck()
                if not await self._still_leader():
                    return
                await self._count_failure(exc)
                attempt += 1
                await backoff_sleep(attempt)
                continue
            self._failures = 0
            if self.wedged_since is not None:
                _log.warning("the broker takes events again; the relay is publishing")
                self.wedged_since = None
            if sent < self._batch.now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)

    async def _count_failure(self, exc: BaseException) -> None:
        """Count a failure of the broker's own (see `broker_fault`). A broker that answers
        while publishing keeps failing has a wedged partition (Tansu 0.6 can stop advancing
        one for good). Say so once, and ask the embedded broker's supervisor, when there is
        one, for a new broker: it republishes from the log like any broker that lost its
        state. The request names the broker the failures were seen on, so a supervisor that
        replaced it meanwhile ignores it."""
        now = time.monotonic()
        if not broker_fault(exc) or now < self._settling_until:
            return  # not the broker's, or a new incarnation still creating its topics
        try:
            async with asyncio.timeout(_ALIVE_SECONDS):
                await broker_reachable(self._bootstrap)
        except (OSError, TimeoutError):
            self._failures = 0  # away, not wedged: the broker watch reports that
            return
        if self._failures == 0:
            self._failing_since = now
            self._suspect = self._broker_pid()
        self._failures += 1
        failing_for = now - self._failing_since
        if (
            self._failures < self._wedged_after
            or failing_for < self._wedged_seconds
            or self.wedged_since is not None
        ):
            return
        self.wedged_since = now
        reason = (
            f"{self._failures} publish attempts over {failing_for:.0f} s failed while the "
            "broker answered"
        )
        if self._restart_file is None:
            _log.error("the broker looks wedged (%s); it needs a restart", reason)
            return
        _log.error("the broker looks wedged (%s); asking for a new embedded broker", reason)
        request_restart(self._restart_file, f"a partition is wedged ({reason})", pid=self._suspect)

    def _broker_pid(self) -> int | None:
        return None if self._restart_file is None else supervised_broker_pid(self._restart_file)

    def _settle(self) -> None:
        """A new incarnation: failures while its topics are created are not a wedge."""
        self._failures = 0
        self._settling_until = time.monotonic() + self._wedged_seconds

    async def _new_incarnation(self) -> None:
        """Settle, and send on new clients: a producer from before the restart may hold the
        old broker's partition counts, and would put keys on other partitions than the
        ones the republished log's earlier records went to."""
        self._settle()
        await self._disconnect()
        await self._connect()

    def check_wedged(self) -> None:
        """For readiness: fail while the broker answers but does not take events."""
        if self.wedged_since is not None:
            raise BrokerWedged(
                f"publishing has failed for {time.monotonic() - self.wedged_since:.0f} s"
            )

    async def _still_leader(self) -> bool:
        """Whether the session holding the leader lock still lives. SQLAlchemy reconnects
        a connection that failed on its next use, so the answer must come from the lock
        itself: a new session holds none."""
        conn = self._leader
        assert conn is not None
        try:
            async with asyncio.timeout(_ALIVE_SECONDS):
                if conn.in_transaction():
                    await conn.rollback()
                holds = await repository.holds_leader_lock(conn)
                await conn.commit()
        except Exception:
            holds = False
        if holds:
            return True
        _log.warning("relay lost its leader session; competing for leadership again")
        return False

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the leader connection: nothing is claimed or marked by a
        relay that no longer holds the lock."""
        conn = self._leader
        assert conn is not None, "only the leader relay touches the log"
        async with conn.begin():
            yield conn

    async def _connect_leading(self) -> bool:
        """Connect the Kafka clients, which waits as long as the broker is away, using
        the leader session meanwhile so its idle timeout does not end it (see
        `repository.hold_leader_session`). False if leadership was lost while waiting."""
        if self._producer is not None and self._admin is not None:
            return True  # every cycle but a reconnect's: no task to start
        connecting = asyncio.ensure_future(self._connect())
        try:
            while not connecting.done():
                await asyncio.wait({connecting}, timeout=self._leader_idle_ms / 3000)
                if not connecting.done() and not await self._still_leader():
                    return False
            connecting.result()
            return True
        finally:
            connecting.cancel()

    async def _connect(self) -> None:
        if self._producer is None:
            producer = make_producer(self._bootstrap, client_id="salesops-relay")
            await start_with_backoff(producer, "relay producer")
            self._producer = producer
        if self._admin is None:
            admin = make_admin(self._bootstrap, client_id="salesops-relay-admin")
            await start_with_backoff(admin, "relay admin")
            self._admin = admin

    async def _disconnect(self) -> None:
        producer, admin, self._producer, self._admin = self._producer, self._admin, None, None
        if producer is not None:
            await abort_producer(producer)
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    def _clients(self) -> tuple[AIOKafkaProducer, AIOKafkaAdminClient]:
        assert self._producer is not None
        assert self._admin is not None
        return self._producer, self._admin

    async def check_broker(self) -> None:
        """Detect a broker that lost its state and schedule the whole log for republishing."""
        self._last_check = time.monotonic()
        _, admin = self._clients()
        present = await existing_topics(admin)
        current: str | None = None
        if topics.INCARNATION in present:
            value = await read_latest(self._bootstrap, topics.INCARNATION, client_id="relay-check")
            current = value.decode() if value else None
        if current is not None:
            if current != self.incarnation:
                await self._new_incarnation()
            self.incarnation = self._announced = current
            self._checked = True
            return
        await ensure_topics(admin, topics.all_topics(self._partitions))
        incarnation = uuid.uuid4().hex
        async with self._transaction() as conn:
            republished = await repository.republish_all(conn, incarnation=incarnation)
        await self._new_incarnation()
        producer, _ = self._clients()
        # Written only after the log is marked, so a consumer that sees this incarnation
        # can rely on every event in the log arriving in it.
        await self._acknowledged(
            producer, producer.send_and_wait(topics.INCARNATION, incarnation.encode(), partition=0)
        )
        self.incarnation = self._announced = incarnation
        self._checked = True
        if republished:
            BROKER_RESETS.inc()
            _log.warning(
                "broker lost its state; republishing %d events as incarnation %s",
                republished,
                incarnation,
            )
        self._wake.set()

    async def _count_backlog(self) -> None:
        """Counted by the watch, not per batch: the count costs more than a quarter of a
        batch's time when the backlog is large. A relay that stood down meanwhile reports
        no backlog (see `_stand_down`)."""
        async with self._engine.connect() as conn:
            counts = await repository.backlog(conn)
        if self.leading:
            RELAY_BACKLOG.set(counts.backlog)
            RELAY_SET_ASIDE.set(counts.set_aside)

    async def publish_batch(self) -> int:
        async with self._transaction() as conn:
            rows = await repository.claim_unpublished(conn, limit=self._batch.now)
            if not rows:
                return 0
            refused = await self._acknowledged(self._clients()[0], self._send_all(rows))
            sent = [row for row in rows if row["seq"] not in refused]
            await repository.mark_published(conn, seqs=[row["seq"] for row in sent])
            if refused:
                await repository.set_aside(conn, errors=refused)
        for row in sent:
            RELAY_PUBLISHED.labels(row["topic"]).inc()
        for row in rows:
            if row["seq"] in refused:
                RELAY_UNPUBLISHABLE.labels(row["topic"]).inc()
                _log.error(
                    "event %s/%s (seq %s) cannot be published and is set aside: %s",
                    row["source"],
                    row["event_id"],
                    row["seq"],
                    refused[row["seq"]],
                )
        return len(rows)

    async def _send_all(self, rows: Sequence[Any]) -> dict[int, str]:
        """Send the rows; answer the errors of those refused before sending, by seq.
        Raises if the broker fails any record, so the whole batch stays in the log."""
        refused: dict[int, str] = {}
        futures: list[asyncio.Future[Any]] = []
        for n, row in enumerate(rows, start=1):
            try:
                futures.append(await self._send(row))
            except Exception as exc:
                if not refused_before_sending(exc):
                    raise
                refused[row["seq"]] = f"{type(exc).__name__}: {exc}"[:2000]
            if n % 64 == 0:
                # send() rarely yields; without this a large batch stalls every in-flight
                # request for its whole length.
                await asyncio.sleep(0)
        answers = await asyncio.gather(*futures, return_exceptions=True)
        failed = [answer for answer in answers if isinstance(answer, BaseException)]
        if failed:
            raise BrokerRefused(failed, len(futures))
        return refused

    @staticmethod
    async def _acknowledged(producer: AIOKafkaProducer, sending: Awaitable[T]) -> T:
        """Await `sending` for at most ACK_SECONDS; on any failure halt the producer before
        anything else runs (a database rollback can take longer than aiokafka's retry
        pause), so nothing unacknowledged is ever sent again."""
        try:
            async with asyncio.timeout(ACK_SECONDS):
                return await sending
        except TimeoutError as exc:
            halt_producer(producer)
            raise Unacknowledged(f"no acknowledgement within {ACK_SECONDS} s") from exc
        except BaseException:
            halt_producer(producer)
            raise

    async def _send(self, row: Any) -> asyncio.Future[Any]:
        producer, _ = self._clients()
        return await producer.send(
            row["topic"],
            key=row["partition_key"].encode(),
            value=row["envelope"].encode(),
            headers=[
                (topics.HEADER_EVENT_SOURCE, row["source"].encode()),
                (topics.HEADER_EVENT_ID, row["event_id"].encode()),
                (topics.HEADER_EVENT_TYPE, row["type"].encode()),
                (topics.HEADER_LOG_SEQ, str(row["seq"]).encode()),
            ],
        )


async def _drop(conn: AsyncConnection) -> None:
    """Close a connection for good (not back into the pool), releasing its session locks."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
