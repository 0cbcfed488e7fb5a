"""SQL of the event log: the intake's group-commit insert, the relay's claim and mark, and
what operators read of it.

The intake and the relay are the hot path and are benchmarked: each function here sends
exactly the statements its caller sent before they lived here, on the caller's
connection, so moving them cost no round trip. The intake writes through a bare asyncpg
connection (see event_log.py for why), the relay through the SQLAlchemy connection that
holds its leader lock, so those statements stay raw SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Row, RowMapping, Text, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.pipeline_api.models import StoredEvent

_INSERT = """
INSERT INTO pipeline.events
    (source, event_id, type, subject, topic, partition_key, event_time, envelope)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::timestamptz[], $8::jsonb[])
ON CONFLICT (source, event_id) DO NOTHING
RETURNING source, event_id
"""
_ARCHIVE_AND_INSERT = (
    """
WITH archived AS (
    INSERT INTO pipeline.webhook_requests (source_id, kind, headers, body)
    SELECT * FROM unnest($9::text[], $10::text[], $11::jsonb[], $12::bytea[])
)
"""
    + _INSERT
)
EVENT_COLUMNS = 8
"""Arrays `insert_events` takes for the events: source, event_id, type, subject, topic,
partition_key, event_time, envelope (JSON text)."""


async def insert_events(
    conn: asyncpg.Connection,
    *,
    events: Sequence[list[Any]],
    archives: Sequence[list[Any]] | None,
) -> set[tuple[str, str]]:
    """Insert events, column by column (`EVENT_COLUMNS` arrays), and archive the webhook
    requests they came in (source_id, kind, headers as JSON text, body) in the same
    statement; one autocommitted statement, one round trip. Answers the (source,
    event_id) keys newly stored: the others were already in the log."""
    if archives:
        rows = await conn.fetch(_ARCHIVE_AND_INSERT, *events, *archives)
    else:
        rows = await conn.fetch(_INSERT, *events)
    return {(row["source"], row["event_id"]) for row in rows}


# Public for the intake benchmark, which reports the plan PostgreSQL picks for it.
CLAIM = text(
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
_REPUBLISH = text("UPDATE pipeline.events SET published_at = NULL WHERE published_at IS NOT NULL")
_RECORD_INCARNATION = text(
    "INSERT INTO pipeline.broker_incarnations (id, republished_events) VALUES (:id, :n)"
)
# Session advisory lock key of the relay leader (any constant unique to this purpose).
_LEADER_LOCK = 0x5A1E5095E1A7
_TRY_LEAD = text("SELECT pg_try_advisory_lock(:key)")
# Whether this session holds an advisory lock: the leader session holds only its own.
_HOLDS_LOCK = text(
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_backend_pid() AND granted)"
)
# Each is set only where the server knows it (idle_session_timeout: PostgreSQL 14 and
# later; keepalives apply to TCP connections).
_LEADER_SESSION = text(
    "SELECT set_config(name, CASE name WHEN 'idle_session_timeout' THEN :idle_ms "
    "WHEN 'tcp_keepalives_idle' THEN '5' WHEN 'tcp_keepalives_interval' THEN '2' "
    "ELSE '3' END, false) FROM pg_settings WHERE name IN ('idle_session_timeout', "
    "'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count')"
)
# Two counts, each by its own partial index (a single scan filtered both ways matches
# neither index's condition and reads the whole table).
_BACKLOG = text(
    "SELECT (SELECT count(*) FROM pipeline.events"
    " WHERE published_at IS NULL AND unpublishable_at IS NULL) AS backlog,"
    " (SELECT count(*) FROM pipeline.events"
    " WHERE unpublishable_at IS NOT NULL AND published_at IS NULL) AS set_aside"
)


async def try_lead(conn: AsyncConnection) -> bool:
    """Take the relay leader's session advisory lock if it is free."""
    return bool(await conn.scalar(_TRY_LEAD, {"key": _LEADER_LOCK}))


async def hold_leader_session(conn: AsyncConnection, *, idle_ms: int) -> None:
    """Let PostgreSQL end the leader's session, releasing the lock, when the leader is gone
    without closing it (killed host, half-open TCP): a live leader uses its session more
    often than every `idle_ms`."""
    await conn.execute(_LEADER_SESSION, {"idle_ms": str(idle_ms)})


async def holds_leader_lock(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(_HOLDS_LOCK))


async def backlog(conn: AsyncConnection) -> Row[Any]:
    """(backlog, set_aside): rows waiting to be published, and rows set aside."""
    return (await conn.execute(_BACKLOG)).one()


async def claim_unpublished(conn: AsyncConnection, *, limit: int) -> Sequence[RowMapping]:
    """The oldest unpublished rows, locked until the transaction ends, in log order."""
    return (await conn.execute(CLAIM, {"limit": limit})).mappings().all()


async def mark_published(conn: AsyncConnection, *, seqs: list[int]) -> None:
    await conn.execute(_MARK, {"seqs": seqs})


async def set_aside(conn: AsyncConnection, *, errors: Mapping[int, str]) -> None:
    """Mark rows unpublishable, each with its error, by seq."""
    await conn.execute(_SET_ASIDE, [{"seq": seq, "error": error} for seq, error in errors.items()])


async def republish_all(conn: AsyncConnection, *, incarnation: str) -> int:
    """Mark the whole log unpublished for a new broker incarnation, and record it; answers
    how many events go out again."""
    republished = (await conn.execute(_REPUBLISH)).rowcount or 0
    await conn.execute(_RECORD_INCARNATION, {"id": incarnation, "n": republished})
    return republished


async def get_event(session: AsyncSession, *, source: str, event_id: str) -> StoredEvent | None:
    query = select(StoredEvent).where(
        StoredEvent.source == source, StoredEvent.event_id == event_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_unpublishable(
    session: AsyncSession, *, after: int | None, limit: int
) -> Sequence[Any]:
    """Events set aside, in log order, with the size of their stored CloudEvent."""
    query = (
        select(
            StoredEvent.seq,
            StoredEvent.source,
            StoredEvent.event_id.label("id"),
            StoredEvent.type,
            StoredEvent.topic,
            StoredEvent.partition_key,
            StoredEvent.event_time.label("time"),
            StoredEvent.received_at,
            StoredEvent.unpublishable_at,
            StoredEvent.unpublishable_error.label("error"),
            func.octet_length(StoredEvent.envelope.cast(Text)).label("size"),
        )
        .where(StoredEvent.unpublishable_at.is_not(None))
        .order_by(StoredEvent.seq)
        .limit(limit)
    )
    if after is not None:
        query = query.where(StoredEvent.seq > after)
    return (await session.execute(query)).all()


async def hand_back_unpublishable(session: AsyncSession, *, seqs: Sequence[int] | None) -> set[int]:
    """Put set-aside events (those of `seqs`, or all when None) back in the relay's
    queue; answers the seqs that were set aside."""
    statement = (
        update(StoredEvent)
        .where(StoredEvent.unpublishable_at.is_not(None))
        .values(unpublishable_at=None, unpublishable_error=None)
        .returning(StoredEvent.seq)
    )
    if seqs is not None:
        statement = statement.where(StoredEvent.seq.in_(seqs))
    return set((await session.execute(statement)).scalars())
