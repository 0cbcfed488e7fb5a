"""What heals a broker: the embedded broker's supervisor replaces a broker that exited or
that the relay asked it to replace, and the relay asks only when the broker answers but
publishing keeps failing (a wedged partition), not when the broker is simply away."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.pipeline_api.relay import Relay
from shared.embedded import BrokerSupervisor, EmbeddedBroker, request_restart
from shared.kafka import BrokerWedged


def _new_pid(pid_file: Path, old: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text and int(text) != old:
            return int(text)
        time.sleep(0.05)
    raise AssertionError("the supervisor started no new broker")


def test_supervisor_replaces_a_killed_broker_and_one_asked_for(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    pid_file, restart_file = tmp_path / "tansu.pid", tmp_path / "tansu.restart"
    supervisor = BrokerSupervisor(
        broker, pid_file=pid_file, restart_file=restart_file, interval=0.1
    )
    supervisor.start()
    try:
        first = int(pid_file.read_text())
        os.kill(first, signal.SIGKILL)
        second = _new_pid(pid_file, first)
        assert broker.running()

        request_restart(restart_file, "a partition is wedged (test)")
        third = _new_pid(pid_file, second)
        assert broker.running()
        assert not restart_file.exists(), "a request is served once"
        assert third != first
    finally:
        supervisor.stop()
    assert not broker.running()
    assert not pid_file.exists()


def _relay(bootstrap: str, restart_file: Path) -> Relay:
    return Relay(
        engine=create_async_engine("postgresql+asyncpg://unused@/unused"),
        bootstrap=bootstrap,
        batch_size=10,
        poll_seconds=0.1,
        broker_check_seconds=1,
        partitions=3,
        wedged_after=2,
        restart_file=restart_file,
    )


async def test_relay_asks_for_a_new_broker_only_when_it_answers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    restart_file = tmp_path / "tansu.restart"
    wedged = _relay(kafka_bootstrap, restart_file)
    await wedged._count_failure()
    assert not restart_file.exists(), "one failed cycle is not a wedge"
    wedged.check_wedged()
    await wedged._count_failure()
    assert "a partition is wedged" in restart_file.read_text()
    with pytest.raises(BrokerWedged):
        wedged.check_wedged()

    away = EmbeddedBroker(log_path=tmp_path / "away.log")  # not started yet
    restart_file.unlink()
    returning = _relay(away.bootstrap, restart_file)
    for _ in range(3):
        await returning._count_failure()
    assert not restart_file.exists(), "a broker that is away is not wedged"
    returning.check_wedged()
    away.start()
    try:
        await returning._count_failure()  # e.g. a send cut short by the restart
        assert not restart_file.exists(), "failures while it was away do not count"
    finally:
        away.stop()
