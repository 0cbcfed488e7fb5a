"""The durable event log: every accepted event is here before the client hears 2xx.

Writes are group-committed: concurrent requests queue their events and a writer task
inserts whatever has gathered in a single statement, so a commit's fsync is shared by
every request waiting on it. `(source, event_id)` is unique, so a retried event is a no-op
that reports itself as a duplicate.

Each writer keeps its own asyncpg connection and sends one `INSERT ... RETURNING` in
autocommit mode: a single statement is its own transaction, durable when it returns, in
one round trip. Through the pool it took five (ping, BEGIN, INSERT, COMMIT, reset), and on
a busy event loop every round trip waits its turn behind request parsing.

Webhook requests whose every change mapped ride along: the same statement archives their
raw bodies, so a request's archive and its events become durable together. The statement
is in repository.py; the writer sends it on its own connection, so that costs nothing.

One request must not fail another: when PostgreSQL refuses a group for its data (a NUL in
text or jsonb, a value too large), the writer sends the group again in halves, splitting
each refused half, and only a request it refuses alone fails, with `EventsRefused`. An
outage fails the whole group, since retrying it in parts would only fail slower.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.pipeline_api.events import repository
from shared.db_errors import refused_by_data
from shared.events import CanonicalEvent
from shared.metrics import EVENT_LOG_COMMIT_SECONDS

_log = logging.getLogger("salesops.event_log")


@dataclass(frozen=True)
class Archive:
    """A webhook request as it arrived, kept for audit and replay."""

    source_id: str | None
    kind: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class LogRow:
    source: str
    event_id: str
    type: str
    subject: str
    topic: str
    partition_key: str
    event_time: datetime
    envelope_json: str
    size: int
    """Bytes this row takes as a Kafka record (value, key and headers), roughly."""

    @classmethod
    def of(cls, event: CanonicalEvent) -> LogRow:
        env = event.envelope
        envelope = event.encoded
        small = (env.source, env.id, env.type, event.partition_key)
        return cls(
            source=env.source,
            event_id=env.id,
            type=env.type,
            subject=event.subject,
            topic=event.topic,
            partition_key=event.partition_key,
            event_time=env.time,
            envelope_json=envelope.decode(),
            size=sent_size(envelope) + sum(len(p.encode()) for p in small) + _RECORD_OVERHEAD,
        )


# Header names, the log sequence number and record framing, generously.
_RECORD_OVERHEAD = 256
# orjson writes an exponent with its sign: rare outside floats, even in hex ids.
_MAY_HAVE_EXPONENT = re.compile(rb"\d[eE][-+]\d")
# A number with an exponent where JSON allows a value (inside a string it only overcounts).
_EXPONENT_NUMBER = re.compile(rb"[:,\[](-?)(\d+)(?:\.(\d+))?[eE]([-+]?\d+)")


def sent_size(envelope: bytes) -> int:
    """An upper bound of the bytes the relay sends for this compact JSON: it sends
    PostgreSQL's jsonb text, which puts a space after every `:` and `,` and writes a
    number in plain notation (`1e+308` takes 309 digits). Counting every `:` and `,`,
    even inside strings, keeps the common case to four C-level scans; the exponent
    pre-filter finds nothing in most events."""
    size = len(envelope) + envelope.count(b":") + envelope.count(b",")
    if _MAY_HAVE_EXPONENT.search(envelope):
        for match in _EXPONENT_NUMBER.finditer(envelope):
            size += _plain_length(*match.groups()) - (match.end() - match.start() - 1)
    return size


def _plain_length(sign: bytes, whole: bytes, fraction: bytes | None, exponent: bytes) -> int:
    """At least the length of PostgreSQL's numeric text for sign whole.fraction e exponent:
    the integer part's digits, then as many decimals as the fraction had less the exponent."""
    shift = int(exponent)
    decimals = max(0, len(fraction or b"") - shift)
    return len(sign) + max(1, len(whole) + shift) + (decimals + 1 if decimals else 0)


class EventsRefused(Exception):
    """PostgreSQL (or the size limit) refused this request's rows; sending them again
    would fail again. `reason` says why, for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Pending:
    rows: list[LogRow]
    archive: Archive | None
    done: asyncio.Future[list[bool]]


class EventLogWriter:
    """Group commit for the event log. `append` resolves once its rows are durable.

    Several writers drain one queue so that one group is encoded and sent while another
    waits for its commit. Two groups inserting the same key cannot both win: Postgres
    makes the second wait for the first and then skip the row, so it reports a duplicate.
    """

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[], None],
        max_event_bytes: int,
        writers: int = 2,
    ) -> None:
        self._dsn = dsn
        self.max_event_bytes = max_event_bytes
        self._on_commit = on_commit
        self._writers = writers
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"event-log-writer-{n}")
            for n in range(self._writers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.done.done():
                pending.done.set_exception(RuntimeError("the event log writer stopped"))

    async def append(self, rows: list[LogRow], archive: Archive | None = None) -> list[bool]:
        """Store rows (and archive the request they came in, if given, in the same
        statement); for each row, True if newly stored, False if it was a duplicate.
        Raises `EventsRefused` if a row is too large to publish or the database refuses it."""
        for row in rows:
            if row.size > self.max_event_bytes:
                raise EventsRefused(too_large(row, self.max_event_bytes))
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(rows, archive, fut))
        return await fut

    async def append_each(self, rows: list[LogRow]) -> list[bool | EventsRefused]:
        """Like `append`, but a refused row is answered alone (its `EventsRefused` in its
        place) and the others are stored: for callers that report per event. Only if the
        request is refused, which is rare, are its rows sent again as requests of one row
        each, in one group the writer splits in halves down to the refused rows."""
        try:
            return list(await self.append(rows))
        except EventsRefused as refused:
            if len(rows) == 1:
                return [refused]
        alone = await asyncio.gather(*(self.append([row]) for row in rows), return_exceptions=True)
        out: list[bool | EventsRefused] = []
        for result in alone:
            if isinstance(result, BaseException) and not isinstance(result, EventsRefused):
                raise result
            out.append(result if isinstance(result, EventsRefused) else result[0])
        return out

    async def _run(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                group = [await self._queue.get()]
                while not self._queue.empty():
                    group.append(self._queue.get_nowait())
                try:
                    conn = await self._connected(conn)
                    with EVENT_LOG_COMMIT_SECONDS.time():
                        results = await self._write(conn, group)
                except Exception as exc:
                    if refused_by_data(exc) and len(group) > 1:
                        conn = await self._write_halves(conn, group)
                    elif refused_by_data(exc):
                        _refuse(group[0], exc)
                    else:  # the waiting requests answer 503; the CRM retries
                        _failed(conn, group, exc)
                        conn = None
                    continue
                self._resolve(group, results)
        finally:
            if conn is not None:
                conn.terminate()

    async def _connected(self, conn: asyncpg.Connection | None) -> asyncpg.Connection:
        if conn is not None and not conn.is_closed():
            return conn
        return await asyncpg.connect(
            self._dsn, server_settings={"application_name": "salesops-intake"}
        )

    async def _write_halves(
        self, conn: asyncpg.Connection | None, group: list[_Pending]
    ) -> asyncpg.Connection | None:
        """Send the halves of a refused group, and the halves of a refused half, down to
        the requests the database refuses alone: one bad request in n costs about
        2·log2(n) statements, not n commits. Left half first, so the log keeps the
        requests' order."""
        parts = [group[len(group) // 2 :], group[: len(group) // 2]]  # a stack, left on top
        while parts:
            part = parts.pop()
            try:
                conn = await self._connected(conn)
                results = await self._write(conn, part)
            except Exception as exc:
                if not refused_by_data(exc):
                    _failed(conn, group, exc)
                    return None
                if len(part) > 1:
                    parts += [part[len(part) // 2 :], part[: len(part) // 2]]
                else:
                    _refuse(part[0], exc)
                continue
            self._resolve(part, results)
        return conn

    def _resolve(self, group: list[_Pending], results: list[list[bool]]) -> None:
        for pending, result in zip(group, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)
        self._on_commit()

    async def _write(self, conn: asyncpg.Connection, group: list[_Pending]) -> list[list[bool]]:
        # Dedupe inside the group first: the first copy of a key wins, later copies (even in
        # the same request) are duplicates, exactly as if they had arrived one by one.
        unique: dict[tuple[str, str], LogRow] = {}
        for pending in group:
            for row in pending.rows:
                unique.setdefault((row.source, row.event_id), row)
        cols: list[Any] = [list(c) for c in zip(*map(_as_tuple, unique.values()), strict=True)]
        cols = cols or [[] for _ in range(repository.EVENT_COLUMNS)]  # an archive, no events
        archives = [p.archive for p in group if p.archive is not None]
        archived: list[list[Any]] | None = (
            [
                [a.source_id for a in archives],
                [a.kind for a in archives],
                [orjson.dumps(a.headers).decode() for a in archives],
                [a.body for a in archives],
            ]
            if archives
            else None
        )
        inserted = await repository.insert_events(conn, events=cols, archives=archived)
        results: list[list[bool]] = []
        for pending in group:
            flags = []
            for row in pending.rows:
                key = (row.source, row.event_id)
                flags.append(key in inserted)
                inserted.discard(key)
            results.append(flags)
        return results


def too_large(row: LogRow, limit: int) -> str:
    return (
        f"the event takes {row.size} bytes as a Kafka record; the limit is {limit} "
        "(SALESOPS_EVENT_MAX_BYTES, below what the broker accepts)"
    )


def _refusal(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return f"the database refused it: {exc}" + (f" ({detail})" if detail else "")


def _refuse(pending: _Pending, exc: Exception) -> None:
    _log.warning("the database refused a request's events: %s", exc)
    if not pending.done.done():
        pending.done.set_exception(EventsRefused(_refusal(exc)))


def _failed(conn: asyncpg.Connection | None, group: list[_Pending], exc: Exception) -> None:
    """Fail every waiting request and drop the connection, whose state is unknown."""
    _log.error("event log write failed", exc_info=exc)
    for pending in group:
        if not pending.done.done():
            pending.done.set_exception(exc)
    if conn is not None:
        conn.terminate()


def _as_tuple(row: LogRow) -> tuple[Any, ...]:
    return (
        row.source,
        row.event_id,
        row.type,
        row.subject,
        row.topic,
        row.partition_key,
        row.event_time,
        row.envelope_json,
    )
