"""Real infrastructure for tests: PostgreSQL and a Kafka-protocol broker, never fakes.

`TEST_DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` point at existing servers when set;
otherwise embedded PostgreSQL and the Tansu broker are started, as on a fresh clone. Each
test session gets a database of its own, so runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.embedded import EmbeddedBroker, embedded_postgres, free_port, scratch_database


@contextlib.contextmanager
def test_database() -> Iterator[str]:
    """Yield a SQLAlchemy asyncpg URL of an empty database made for this session."""
    external = os.environ.get("TEST_DATABASE_URL")
    if not external:
        with (
            tempfile.TemporaryDirectory(prefix="salesops-test-") as tmp,
            embedded_postgres(Path(tmp) / "pg") as url,
        ):
            yield url
        return
    with scratch_database(external, prefix="salesops_test") as url:
        yield url


@contextlib.contextmanager
def test_broker() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        raise RuntimeError(
            "KAFKA_BOOTSTRAP_SERVERS names one broker, whose fixed topic names only one test "
            "process's stack can use at a time: run pytest with -n 0 (bin/test does)"
        )
    if external:
        yield external
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


async def query(database_url: str, sql: str, **params: Any) -> Sequence[Row[Any]]:
    """Rows of one read-only statement, on a connection of its own: tests look at what
    the services stored without sharing their pools."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


@asynccontextmanager
async def serve_in_loop(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port in this event loop; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
