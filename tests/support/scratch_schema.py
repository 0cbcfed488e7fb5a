"""A schema of a test's own, with its tables created and dropped afterwards: a toy consumer
built on the consumer base keeps its offsets, dead letters and state there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.consumer_store import ConsumerTables, consumer_tables
from shared.db import make_metadata


@dataclass(frozen=True)
class Scratch:
    schema: str
    engine: AsyncEngine
    tables: ConsumerTables
    state: Table


@asynccontextmanager
async def scratch_schema(
    database_url: str, schema: str, state: Callable[[MetaData], Table]
) -> AsyncIterator[Scratch]:
    """`schema` with the consumer tables and the toy's own, which `state` declares."""
    metadata = make_metadata(schema)
    consumer = consumer_tables(metadata)
    own = state(metadata)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.run_sync(metadata.create_all)
    try:
        yield Scratch(schema=schema, engine=engine, tables=consumer, state=own)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()
