"""A consumer's own bookkeeping in its service's schema: stored offsets and dead letters.

Each service declares the two tables in its own `MetaData` (`consumer_tables`), so they
live beside the state they account for and migrate with it. All their SQL is here;
functions take a connection already inside the consumer's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.dispatch import DeadLetter

_LETTERS_PER_INSERT = 1000
"""Letters per INSERT statement: 7 parameters each, well below PostgreSQL's 32767."""
_OPEN_EVENT = text("replayed_at IS NULL AND event_id IS NOT NULL")


@dataclass(frozen=True)
class ConsumerTables:
    offsets: Table
    dead_letters: Table


def consumer_tables(metadata: MetaData) -> ConsumerTables:
    """Declare `consumer_offsets` and `dead_letters` in `metadata`'s schema.

    `consumer_offsets` holds the next offset to read per partition, committed with the
    state it produced. `incarnation` names the broker life the offset belongs to: an
    offset from a broker that has since lost its state means nothing, and the partition is
    re-read from the start.

    `dead_letters` holds at most one open letter per event and reason
    (`uq_dead_letters_open_event`, on the reason's digest: a reason can outgrow an index
    entry), so two members applying the same record during a rebalance store it once.
    """
    offsets = Table(
        "consumer_offsets",
        metadata,
        Column("group_id", Text, primary_key=True),
        Column("topic", Text, primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        Column("incarnation", Text, nullable=True),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", Text, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("event_source", Text, nullable=True),
        Column("event_id", Text, nullable=True),
        Column("reason", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("replayed_at", DateTime(timezone=True), nullable=True),
        Index("ix_dead_letters_open", "id", postgresql_where=text("replayed_at IS NULL")),
        Index(
            "uq_dead_letters_open_event",
            "event_source",
            "event_id",
            func.md5(text("reason")),
            unique=True,
            postgresql_where=_OPEN_EVENT,
        ),
    )
    return ConsumerTables(offsets=offsets, dead_letters=dead_letters)


@dataclass(frozen=True)
class StoredOffset:
    next_offset: int
    incarnation: str | None


async def load_offsets(
    conn: AsyncConnection,
    *,
    tables: ConsumerTables,
    group_id: str,
    partitions: Iterable[tuple[str, int]],
) -> dict[tuple[str, int], StoredOffset]:
    t = tables.offsets
    rows = await conn.execute(
        select(t.c.topic, t.c.partition, t.c.next_offset, t.c.incarnation).where(
            t.c.group_id == group_id
        )
    )
    wanted = set(partitions)
    return {
        (r.topic, r.partition): StoredOffset(r.next_offset, r.incarnation)
        for r in rows
        if (r.topic, r.partition) in wanted
    }


async def store_offsets(
    conn: AsyncConnection,
    *,
    tables: ConsumerTables,
    group_id: str,
    offsets: dict[tuple[str, int], int],
    incarnation: str | None,
) -> None:
    if not offsets:
        return
    stmt = insert(tables.offsets)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["group_id", "topic", "partition"],
            set_={
                "next_offset": stmt.excluded.next_offset,
                "incarnation": stmt.excluded.incarnation,
            },
        ),
        [
            {
                "group_id": group_id,
                "topic": topic,
                "partition": partition,
                "next_offset": offset,
                "incarnation": incarnation,
            }
            for (topic, partition), offset in offsets.items()
        ],
    )


async def insert_dead_letters(
    conn: AsyncConnection, *, tables: ConsumerTables, letters: Sequence[DeadLetter]
) -> list[DeadLetter]:
    """Store `letters` but those an open letter holds already (the same event, refused for
    the same reason: a redelivery, say after the stream was read again, or another member
    applying the same batch during a rebalance); answer the stored, in the given order.

    The unique index decides, not a read before the insert, so that two transactions
    storing the same letter at once store it once. A stream read twice leaves one letter
    per refused event, and a fix replays it once."""
    if not letters:
        return []
    t = tables.dead_letters
    stored: list[Row[Any]] = []
    for start in range(0, len(letters), _LETTERS_PER_INSERT):
        chunk = letters[start : start + _LETTERS_PER_INSERT]
        stmt = (
            insert(t)
            .values([asdict(letter) for letter in chunk])
            .on_conflict_do_nothing(
                index_elements=[t.c.event_source, t.c.event_id, func.md5(t.c.reason)],
                index_where=_OPEN_EVENT,
            )
            .returning(t)
        )
        stored.extend((await conn.execute(stmt)).all())
    return [as_letter(row) for row in sorted(stored, key=lambda row: row.id)]  # the given order


async def list_dead_letters(
    session: AsyncSession,
    *,
    tables: ConsumerTables,
    after: int | None,
    limit: int,
    include_replayed: bool,
) -> Sequence[Row[Any]]:
    t = tables.dead_letters
    query = select(t).order_by(t.c.id).limit(limit)
    if after is not None:
        query = query.where(t.c.id > after)
    if not include_replayed:
        query = query.where(t.c.replayed_at.is_(None))
    return (await session.execute(query)).all()


async def get_dead_letter(
    conn: AsyncConnection, *, tables: ConsumerTables, letter_id: int
) -> Row[Any] | None:
    """The letter, locked until the transaction ends, so that two replays cannot both apply it."""
    t = tables.dead_letters
    return (
        await conn.execute(select(t).where(t.c.id == letter_id).with_for_update())
    ).one_or_none()


def as_letter(row: Row[Any]) -> DeadLetter:
    """The typed letter a stored row holds, without the table's own bookkeeping columns."""
    return DeadLetter(**{f.name: row._mapping[f.name] for f in fields(DeadLetter)})


async def open_dead_letters(
    conn: AsyncConnection,
    *,
    tables: ConsumerTables,
    codes: Sequence[str],
    after: int | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Open letters whose reason is "<code>: ..." for one of `codes`, oldest first, locked
    until the transaction ends; letters another transaction holds are skipped."""
    t = tables.dead_letters
    query = (
        select(t)
        .where(*_open_with(t, codes))
        .order_by(t.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(t.c.id > after)
    return (await conn.execute(query)).all()


async def count_open_dead_letters(
    conn: AsyncConnection, *, tables: ConsumerTables, codes: Sequence[str]
) -> int:
    """How many letters are open whose reason is "<code>: ..." for one of `codes`."""
    t = tables.dead_letters
    query = select(func.count()).select_from(t).where(*_open_with(t, codes))
    return int((await conn.execute(query)).scalar_one())


def _open_with(t: Table, codes: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
    return (
        t.c.replayed_at.is_(None),
        or_(*(t.c.reason.startswith(f"{code}: ", autoescape=True) for code in codes)),
    )


async def mark_replayed(
    conn: AsyncConnection, *, tables: ConsumerTables, letter_ids: Sequence[int]
) -> None:
    if not letter_ids:
        return
    t = tables.dead_letters
    await conn.execute(update(t).where(t.c.id.in_(letter_ids)).values(replayed_at=func.now()))
