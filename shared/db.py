"""Async engine and session factory shared by every service.

Each service owns one Postgres schema; its declarative base takes `make_metadata(schema)`,
whose naming convention gives every index and constraint a predictable name that Alembic
migrations can refer to.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def table_of(model: type[Any]) -> Table:
    """A declarative model's `Table`, typed as one (Core statements want a `Table`)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def driver_dsn(url: str) -> str:
    """The plain libpq-style DSN of a SQLAlchemy URL, for code that talks to asyncpg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, application_name: str, pool_size: int = 10) -> AsyncEngine:
    """`hide_parameters`: a failed statement's error (logged, or shown in a traceback) never
    carries its bound values, which hold CRM secrets when a source is written."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of `engine`; `info` is handed to every session (`session.info`)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info or {})


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a statement: a readiness check."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
"""What `pg_export_snapshot` returns, checked before it is written into a statement
(`SET TRANSACTION SNAPSHOT` takes no parameter)."""


async def export_snapshot(conn: AsyncConnection) -> str:
    """The id of `conn`'s transaction snapshot, for other sessions to read in
    (`use_snapshot`) while that transaction stays open."""
    snapshot = str((await conn.exec_driver_sql("SELECT pg_export_snapshot()")).scalar_one())
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


async def use_snapshot(conn: AsyncConnection, snapshot: str) -> None:
    """Read the rest of `conn`'s REPEATABLE READ transaction in `snapshot`: the first
    statement of that transaction."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    await conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
