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
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.dispatch import DeadLetter


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
) -> None:
    if not letters:
        return
    await conn.execute(insert(tables.dead_letters), [asdict(letter) for letter in letters])


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


async def mark_replayed(conn: AsyncConnection, *, tables: ConsumerTables, letter_id: int) -> None:
    t = tables.dead_letters
    await conn.execute(update(t).where(t.c.id == letter_id).values(replayed_at=func.now()))
