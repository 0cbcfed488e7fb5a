"""Services as real processes (`salesops serve ...` under uvicorn) on their own infra."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from services.cli import run_migrations
from shared.embedded import EmbeddedBroker, free_port
from tests.conftest import ADMIN_KEY, API_KEYS
from tests.support.infra import test_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.cli",
                "serve",
                self.name,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-3000:]}")

    def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def service_env(database_url: str, bootstrap: str, **extra: str) -> dict[str, str]:
    """The environment of a service process of the tests' own stack."""
    return {
        **os.environ,
        "SALESOPS_DATABASE_URL": database_url,
        "SALESOPS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SALESOPS_API_KEYS": orjson.dumps(API_KEYS).decode(),
        "SALESOPS_BROKER_CHECK_SECONDS": "1",
        "SALESOPS_RELAY_POLL_SECONDS": "0.2",
        "SALESOPS_DB_POOL_SIZE": "4",
        **extra,
    }


@dataclass
class Stack:
    database_url: str
    broker: EmbeddedBroker
    pipeline: ServiceProcess
    worker: ServiceProcess

    def client(self, service: ServiceProcess) -> httpx.Client:
        return httpx.Client(
            base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A database and broker of this test's own, with both services running."""
    with test_database() as url:
        run_migrations(url)
        broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
        broker.start()
        env = service_env(url, broker.bootstrap)
        pipeline = ServiceProcess("pipeline_api", env, tmp_path)
        worker = ServiceProcess("forecast_worker", env, tmp_path)
        try:
            pipeline.start()
            worker.start()
            yield Stack(url, broker, pipeline, worker)
        finally:
            pipeline.stop()
            worker.stop()
            broker.stop()
