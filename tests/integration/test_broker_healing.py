"""What heals a broker: the embedded broker's supervisor replaces a broker that exited or
that the relay asked it to replace, and the relay asks only when the broker answers but
publishing keeps failing (a wedged partition), not when the broker is simply away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import create_async_engine

from services.pipeline_api.events.relay import BrokerRefused, Relay, Unacknowledged
from shared.embedded import (
    BrokerSupervisor,
    EmbeddedBroker,
    request_restart,
    supervised_broker_pid,
)
from shared.kafka import BrokerWedged


def _new_pid(pid_file: Path, old: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text and int(text) != old:
            return int(text)
        time.sleep(0.05)
    raise AssertionError("the supervisor started no new broker")


@contextlib.contextmanager
def _supervised(tmp_path: Path) -> Iterator[tuple[BrokerSupervisor, Path, Path]]:
    """A supervised broker; yields the supervisor, its pid file and its restart file."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    pid_file, restart_file = tmp_path / "tansu.pid", tmp_path / "tansu.restart"
    supervisor = BrokerSupervisor(broker, restart_file=restart_file, interval=0.1)
    supervisor.start()
    try:
        yield supervisor, pid_file, restart_file
    finally:
        supervisor.stop()
    assert not broker.running()
    assert not pid_file.exists()


def test_supervisor_replaces_a_killed_broker_and_one_asked_for(tmp_path: Path) -> None:
    with _supervised(tmp_path) as (supervisor, pid_file, restart_file):
        broker = supervisor.broker
        first = int(pid_file.read_text())
        assert supervised_broker_pid(restart_file) == first
        os.kill(first, signal.SIGKILL)
        second = _new_pid(pid_file, first)
        assert broker.running()

        request_restart(restart_file, "about the killed broker", pid=first)
        deadline = time.monotonic() + 2
        while restart_file.exists():
            assert time.monotonic() < deadline, "the supervisor never read the request"
            time.sleep(0.05)
        time.sleep(0.3)
        assert broker.pid == second, "a request about a replaced broker is ignored"

        request_restart(restart_file, "a partition is wedged (test)", pid=second)
        third = _new_pid(pid_file, second)
        assert broker.running()
        assert not restart_file.exists(), "a request is served once"
        assert third != first


def test_supervisor_outlives_a_failing_look(tmp_path: Path) -> None:
    with _supervised(tmp_path) as (supervisor, pid_file, restart_file):
        restart_file.mkdir()  # unreadable as a request: every look fails
        time.sleep(0.5)
        assert supervisor._thread.is_alive(), "the supervisor died of an unexpected error"
        restart_file.rmdir()
        first = int(pid_file.read_text())
        os.kill(first, signal.SIGKILL)
        _new_pid(pid_file, first)
        assert supervisor.broker.running()


def test_restarts_leak_no_log_file_descriptors(tmp_path: Path) -> None:
    log = tmp_path / "tansu.log"
    broker = EmbeddedBroker(log_path=log)

    def open_on_log() -> int:
        fds = Path("/proc/self/fd").iterdir()
        return sum(1 for fd in fds if os.path.realpath(fd) == str(log.resolve()))

    broker.start()
    try:
        for _ in range(3):
            broker.restart()
        assert open_on_log() == 0, "each start left the broker's log open in this process"
    finally:
        broker.stop()


def _relay(bootstrap: str, restart_file: Path, *, wedged_seconds: float = 0.0) -> Relay:
    return Relay(
        engine=create_async_engine("postgresql+asyncpg://unused@/unused"),
        bootstrap=bootstrap,
        batch_size=10,
        poll_seconds=0.1,
        broker_check_seconds=1,
        partitions=3,
        wedged_after=2,
        wedged_seconds=wedged_seconds,
        restart_file=restart_file,
    )


_REFUSED = BrokerRefused([KafkaError("refused")], 1)


async def test_relay_asks_for_a_new_broker_only_when_it_answers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    restart_file = tmp_path / "tansu.restart"
    wedged = _relay(kafka_bootstrap, restart_file)
    await wedged._count_failure(_REFUSED)
    assert not restart_file.exists(), "one failed cycle is not a wedge"
    wedged.check_wedged()
    await wedged._count_failure(_REFUSED)
    assert "a partition is wedged" in restart_file.read_text()
    assert json.loads(restart_file.read_text())["pid"] is None, "no supervisor, no pid"
    with pytest.raises(BrokerWedged):
        wedged.check_wedged()

    away = EmbeddedBroker(log_path=tmp_path / "away.log")  # not started yet
    restart_file.unlink()
    returning = _relay(away.bootstrap, restart_file)
    for _ in range(3):
        await returning._count_failure(_REFUSED)
    assert not restart_file.exists(), "a broker that is away is not wedged"
    returning.check_wedged()
    away.start()
    try:
        await returning._count_failure(_REFUSED)  # e.g. a send cut short by the restart
        assert not restart_file.exists(), "failures while it was away do not count"
    finally:
        away.stop()


async def test_only_the_brokers_own_lasting_failures_are_a_wedge(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    restart_file = tmp_path / "tansu.restart"
    restart_file.with_suffix(".pid").write_text("4242\n")
    relay = _relay(kafka_bootstrap, restart_file)
    for not_the_brokers in (
        TimeoutError(),  # a cycle that took too long
        ConnectionRefusedError(),  # the database away
        OSError("pool exhausted"),
    ):
        for _ in range(3):
            await relay._count_failure(not_the_brokers)
    assert not restart_file.exists(), "database and cycle errors are no wedge"

    slow = _relay(kafka_bootstrap, restart_file, wedged_seconds=30)
    for _ in range(5):
        await slow._count_failure(Unacknowledged("no acknowledgement"))
    assert not restart_file.exists(), "failing for less than wedged_seconds is no wedge"
    slow.check_wedged()

    fresh = _relay(kafka_bootstrap, restart_file, wedged_seconds=0.5)
    fresh._settle()  # a new incarnation was just recorded
    for _ in range(3):
        await fresh._count_failure(KafkaError("topic being created"))
    assert not restart_file.exists(), "a new incarnation settles first"
    await asyncio.sleep(0.6)
    for _ in range(2):
        await fresh._count_failure(KafkaError("still failing"))
    await asyncio.sleep(0.6)
    await fresh._count_failure(KafkaError("still failing"))
    request = json.loads(restart_file.read_text())
    assert request["pid"] == 4242, "the request names the broker the failures were seen on"
