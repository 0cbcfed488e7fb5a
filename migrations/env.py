"""Alembic environment: one history for every service's schema, run on asyncpg.

The URL comes from the caller (`salesops migrate`, the test fixtures) through
`config.attributes["url"]`, else from `SALESOPS_DATABASE_URL`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.comp_engine.models import CompBase
from services.forecast_worker.models import ForecastBase
from services.pipeline_api.models import PipelineBase
from shared.settings import Settings

SCHEMAS = ("pipeline", "forecast", "comp")

target_metadata: list[MetaData] = [
    PipelineBase.metadata,
    ForecastBase.metadata,
    CompBase.metadata,
]


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "schema":
        return name in SCHEMAS
    return True


def _run(connection: Connection) -> None:
    for schema in SCHEMAS:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    url = context.config.attributes.get("url") or Settings().require_database_url()
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async(url))


main()
