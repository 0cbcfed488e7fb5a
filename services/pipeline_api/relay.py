"""Publish stored events to Kafka, and republish them if the broker forgets.

The relay takes unpublished rows in log order (`FOR UPDATE SKIP LOCKED`, so API replicas
share the work without sending a row twice at once), sends them keyed by deal, and marks
them published in the same transaction once the broker has acknowledged every one.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import topics
from shared.kafka import (
    ACK_SECONDS,
    abort_producer,
    backoff_sleep,
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
    RELAY_PUBLISHED,
    RELAY_SET_ASIDE,
    RELAY_UNPUBLISHABLE,
)

_log = logging.getLogger("salesops.relay")

_CLAIM = text(
    """
    SELECT seq, source, event_id, type, topic, partition_key, envelope::text AS envelope
    FROM pipeline.events
    WHERE published_at IS NULL AND unpublishable_at IS NULL
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_MARK = text("UPDATE pipeline.events SET published_at = now() WHERE seq = ANY(:seqs)")
_SET_ASIDE = text(
    "UPDATE pipeline.events SET unpublishable_at = now(), unpublishable_error = :error "
    "WHERE seq = :seq"
)
# Longest a relay cycle (a broker check plus one batch) may take before it is abandoned.
CYCLE_SECONDS = 30
_BACKLOG = text(
    "SELECT count(*) FILTER (WHERE unpublishable_at IS NULL) AS backlog, "
    "count(*) FILTER (WHERE unpublishable_at IS NOT NULL) AS set_aside "
    "FROM pipeline.events WHERE published_at IS NULL"
)
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
    ) -> None:
        self._engine = engine
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._bootstrap = bootstrap
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._broker_check_seconds = broker_check_seconds
        self._partitions = partitions
        self._wake = asyncio.Event()
        self._last_check = 0.0
        self.incarnation: str | None = None

    def wake(self) -> None:
        """Called after an intake commit, so new events go out without waiting for a poll."""
        self._wake.set()

    async def run(self) -> None:
        attempt = 0
        try:
            while True:
                try:
                    await self._connect()
                    async with asyncio.timeout(CYCLE_SECONDS):
                        if time.monotonic() - self._last_check >= self._broker_check_seconds:
                            await self.check_broker()
                        sent = await self.publish_batch()
                    attempt = 0
                except asyncio.CancelledError:
                    if cancelled_for_real():
                        raise
                    _log.warning("relay cycle hit a stray cancellation; reconnecting")
                    await self._disconnect()
                    self._last_check = 0.0
                    continue
                except Exception:  # broker or database away: the log keeps the events
                    _log.warning("relay cycle failed; reconnecting and retrying", exc_info=True)
                    await self._disconnect()
                    # The broker may have restarted: check it (and create the topics)
                    # before anything is produced to it again.
                    self._last_check = 0.0
                    attempt += 1
                    await backoff_sleep(attempt)
                    continue
                if sent < self._batch_size:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
        finally:
            await self._disconnect()

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
        # Counted here, on the check's schedule, not per batch: the count costs more than
        # a quarter of a batch's time when the backlog is large.
        await self._count_backlog()
        producer, admin = self._clients()
        present = await existing_topics(admin)
        current: str | None = None
        if topics.INCARNATION in present:
            value = await read_latest(self._bootstrap, topics.INCARNATION, client_id="relay-check")
            current = value.decode() if value else None
        if current is not None:
            self.incarnation = current
            return
        await ensure_topics(admin, topics.all_topics(self._partitions))
        incarnation = uuid.uuid4().hex
        async with self._engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE pipeline.events SET published_at = NULL WHERE published_at IS NOT NULL"
                )
            )
            republished = result.rowcount or 0
            await conn.execute(
                text(
                    "INSERT INTO pipeline.broker_incarnations (id, republished_events) "
                    "VALUES (:id, :n)"
                ),
                {"id": incarnation, "n": republished},
            )
        # Written only after the log is marked, so a consumer that sees this incarnation
        # can rely on every event in the log arriving in it.
        await self._acknowledged(
            producer, producer.send_and_wait(topics.INCARNATION, incarnation.encode(), partition=0)
        )
        self.incarnation = incarnation
        if republished:
            BROKER_RESETS.inc()
            _log.warning(
                "broker lost its state; republishing %d events as incarnation %s",
                republished,
                incarnation,
            )
        self._wake.set()

    async def _count_backlog(self) -> None:
        async with self._engine.connect() as conn:
            counts = (await conn.execute(_BACKLOG)).one()
        RELAY_BACKLOG.set(counts.backlog)
        RELAY_SET_ASIDE.set(counts.set_aside)

    async def publish_batch(self) -> int:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self._batch_size})).mappings().all()
            if not rows:
                return 0
            refused = await self._acknowledged(self._clients()[0], self._send_all(rows))
            sent = [row for row in rows if row["seq"] not in refused]
            await conn.execute(_MARK, {"seqs": [row["seq"] for row in sent]})
            if refused:
                await conn.execute(
                    _SET_ASIDE, [{"seq": seq, "error": error} for seq, error in refused.items()]
                )
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
