"""`salesops dev` as a user runs it: one base URL, embedded everything, data kept across runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from shared.embedded import free_port
from tests.e2e.checks import post_in_batches, served_deals, wait_for_projection
from tests.e2e.conftest import PROJECT_ROOT
from tests.support.events import CREATED, UPDATED, event
from tests.support.streams import synthetic_stream

pytestmark = pytest.mark.e2e


def _start_dev(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}
    env["SALESOPS_BROKER_CHECK_SECONDS"] = "1"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "dev",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"salesops dev did not become ready: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert proc.wait(30) == 0


def _deal(base: str, key: str) -> httpx.Response:
    return httpx.get(f"{base}/v1/deals/dev-1", headers={"Authorization": f"Bearer {key}"})


def _wait_deal(base: str, key: str, version: int) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = _deal(base, key)
        if r.status_code == 200 and r.json()["version"] >= version:
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError(f"deal never reached version {version}: {_deal(base, key).text}")


def test_dev_serves_everything_and_keeps_data_across_runs(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    log = tmp_path / "dev.log"
    created = event(
        CREATED,
        {
            "deal_id": "dev-1",
            "name": "Dev",
            "owner_id": "r",
            "stage": "a",
            "amount": "5.00",
            "currency": "USD",
        },
        time="2026-07-01T00:00:00Z",
    )

    proc = _start_dev(data_dir, port, log)
    try:
        key = (data_dir / "dev-api-key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        for path in (
            "/openapi.json",
            "/services/pipeline_api/openapi.json",
            "/services/forecast_worker/openapi.json",
            "/services/comp_engine/openapi.json",
        ):
            assert httpx.get(base + path).status_code == 200, path
        r = httpx.post(f"{base}/v1/events", json=created, headers=auth)
        assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
        _wait_deal(base, key, 1)
    finally:
        _stop(proc)

    proc = _start_dev(data_dir, port, log)
    try:
        assert (data_dir / "dev-api-key").read_text().strip() == key, "the dev key is kept"
        again = httpx.post(f"{base}/v1/events", json=created, headers=auth)
        assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
        update = event(
            UPDATED, {"deal_id": "dev-1", "stage": "closedwon"}, time="2026-07-02T00:00:00Z"
        )
        httpx.post(f"{base}/v1/events", json=update, headers=auth)
        deal = _wait_deal(base, key, 2)
        assert deal["status"] == "won"
        time.sleep(2)  # give a double application, were there one, time to show
        history = httpx.get(f"{base}/v1/deals/dev-1/history", headers=auth).json()["versions"]
        assert [v["version"] for v in history] == [1, 2], (
            "the republished log applied nothing twice"
        )
    finally:
        _stop(proc)


def _broker_pid(data_dir: Path, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid_file = data_dir / "tansu.pid"
        if pid_file.exists() and (text := pid_file.read_text().strip()):
            pid = int(text)
            if pid != other_than:
                return pid
        time.sleep(0.1)
    raise AssertionError("no (new) broker pid was recorded")


def test_dev_restarts_a_killed_broker_and_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    log = tmp_path / "dev.log"
    events = synthetic_stream(deals=40, updates=3, seed=23)
    prefix = events[0]["data"]["deal_id"].rsplit("-", 1)[0]
    third = len(events) // 3

    proc = _start_dev(data_dir, port, log)
    try:
        key = (data_dir / "dev-api-key").read_text().strip()
        with httpx.Client(
            base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            post_in_batches(client, events[:third], size=20)
            deadline = time.monotonic() + 60
            while not served_deals(client, prefix):  # the stream flows end to end
                assert time.monotonic() < deadline, "nothing was applied"
                time.sleep(0.1)
            first = _broker_pid(data_dir)
            flowing = threading.Event()
            posted: list[tuple[int, int]] = []

            def post_rest() -> None:
                rest = events[third:]
                posted.append(post_in_batches(client, rest[:12], size=4))
                flowing.set()  # the relay is being woken to send batch after batch
                posted.append(post_in_batches(client, rest[12:], size=4))

            poster = threading.Thread(target=post_rest)
            poster.start()
            assert flowing.wait(60), "the stream never flowed"
            os.kill(first, signal.SIGKILL)  # mid-stream, with the relay publishing
            poster.join(120)
            assert len(posted) == 2, "every event was acknowledged meanwhile"
            assert _broker_pid(data_dir, other_than=first) != first
            wait_for_projection(client, events, prefix, timeout=120)
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        _stop(proc)
    said = log.read_text()
    assert said.count("the embedded broker is not running") == 1, said[-3000:]
    _assert_client_errors_only_while_the_broker_was_away(said)


def _stamp(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def _assert_client_errors_only_while_the_broker_was_away(said: str) -> None:
    """The Kafka client's own errors come from its retries while the broker is away, so
    how many there are depends on how long the new broker took to start (longer on a busy
    machine). What must hold whatever the machine: none once the relay is republishing
    into the new broker, and no more than a few per second of the outage (a client
    retrying in a tight loop would log hundreds)."""
    lines = said.splitlines()
    errors = [line for line in lines if " ERROR aiokafka" in line]
    back = [line for line in lines if "broker lost its state; republishing" in line]
    assert back, "the relay never republished into the new broker"
    recovered = _stamp(back[0])
    late = [line for line in errors if _stamp(line) > recovered]
    assert late == [], late
    if errors:
        outage = max((recovered - _stamp(errors[0])).total_seconds(), 1.0)
        assert len(errors) <= 10 * outage, (outage, errors)
