"""End to end with the services as real processes: streams with duplicates and reordering,
and the faults a production stack meets (SIGKILLed processes, a broker that forgets)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.checks import (
    assert_history_has_one_version_per_event,
    incarnations,
    post_in_batches,
    projection_rows,
    rewind_offsets,
    settled_offsets,
    stored_offsets,
    wait_for_history,
    wait_for_projection,
)
from tests.e2e.conftest import Stack
from tests.support.events import CREATED, event
from tests.support.forecast_config import stage
from tests.support.streams import as_delivered, dataset_stream, synthetic_stream

pytestmark = pytest.mark.e2e


def test_thousand_real_events_with_duplicates_and_reordering(
    stack: Stack, dataset_dir: Path
) -> None:
    events = dataset_stream(dataset_dir, deals=225, seed=7)
    delivered = as_delivered(events, duplicates=1000 - len(events), seed=7)
    assert len(delivered) == 1000
    with stack.client(stack.pipeline) as intake, stack.client(stack.worker) as worker:
        accepted, duplicates = post_in_batches(intake, delivered, size=50)
        assert accepted == len({(e["source"], e["id"]) for e in events})
        assert duplicates == 1000 - accepted
        prefix = events[0]["data"]["deal_id"].rsplit("-", 1)[0]
        served = wait_for_projection(worker, events, prefix)
        assert len(served) == 225
        won = [d for d in served.values() if d["status"] == "won"]
        assert won
        assert all(d["forecast_category"] == "closed" for d in won)
        assert_history_has_one_version_per_event(worker, events, sorted(served)[:40])


def test_sigkill_and_broker_restart_lose_nothing_and_apply_nothing_twice(stack: Stack) -> None:
    events = synthetic_stream(deals=120, updates=5, seed=11)
    delivered = as_delivered(events, duplicates=150, seed=11)
    prefix = events[0]["data"]["deal_id"].rsplit("-", 1)[0]
    third = len(delivered) // 3
    with stack.client(stack.pipeline) as intake, stack.client(stack.worker) as worker:
        post_in_batches(intake, delivered[:third], size=40)
        deadline = time.monotonic() + 60
        while not worker.get("/v1/deals", params={"limit": 1}).json()["items"]:
            assert time.monotonic() < deadline, "the worker never applied anything"
            time.sleep(0.05)
        stack.worker.sigkill()  # mid-stream: some batches applied, others not

        post_in_batches(intake, delivered[third : 2 * third], size=40)
        time.sleep(1.5)  # let the relay publish them to a broker nobody is reading
        stack.broker.kill()  # the broker forgets every published event
        post_in_batches(intake, delivered[2 * third :], size=40)  # acknowledged with no broker
        stack.broker.start()

        last = delivered[-1:]
        r = intake.post("/v1/events", json=[*last, {"specversion": "1.0"}])
        assert r.status_code == 202
        stack.pipeline.sigkill()  # right after answering
        stack.pipeline.start()
        stack.worker.start()

    with stack.client(stack.worker) as worker:
        served = wait_for_projection(worker, events, prefix, timeout=180)
        assert len(served) == 120
        assert_history_has_one_version_per_event(worker, events, sorted(served))
    republished = incarnations(stack.database_url)
    assert len(republished) == 2, republished
    assert republished[1] >= third, "the restarted broker was refilled from the event log"
    with stack.client(stack.pipeline) as intake:
        sample = events[0]
        stored = intake.get(f"/v1/events/{sample['source']}/{sample['id']}").json()
        assert stored["published"] is True


def test_broker_restart_while_everything_runs(stack: Stack) -> None:
    events = synthetic_stream(deals=60, updates=3, seed=5)
    prefix = events[0]["data"]["deal_id"].rsplit("-", 1)[0]
    half = len(events) // 2
    with stack.client(stack.pipeline) as intake, stack.client(stack.worker) as worker:
        post_in_batches(intake, events[:half], size=25)
        stack.broker.kill()
        post_in_batches(intake, events[half:], size=25)
        away = _readiness_while_away(stack.pipeline.url)
        assert away["checks"]["pipeline_broker"] == "failing: BrokerAway", away
        stack.broker.start()
        wait_for_projection(worker, events, prefix, timeout=120)
        assert len(incarnations(stack.database_url)) == 2
        ready = httpx.get(f"{stack.pipeline.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    said = stack.pipeline.log_path.read_text()
    assert said.count("is unreachable") == 1, "the outage is said once"
    assert said.count("is reachable again") == 1
    outage = said[said.index("is unreachable") : said.index("is reachable again")]
    assert '"logger":"aiokafka' not in outage, "Kafka client errors are muted meanwhile"


def test_reading_the_whole_stream_again_changes_nothing(stack: Stack) -> None:
    """The worker's stored offsets rewound to 0: it reads every event again, and the
    projection (every version and change, the dead letters) is exactly as it was. One event
    names a stage the configuration does not know, so a letter stored twice would show."""
    events = synthetic_stream(deals=60, updates=4, seed=13)
    prefix = events[0]["data"]["deal_id"].rsplit("-", 1)[0]
    stranger = event(
        CREATED,
        {"deal_id": f"{prefix}-stranger", "owner_id": "rep-0", "stage": "Mystery"},
        time="2026-01-02T00:00:00Z",
    )
    delivered = as_delivered([*events, stranger], duplicates=80, seed=13)
    with stack.client(stack.pipeline) as intake, stack.client(stack.worker) as worker:
        put = worker.put("/v1/forecast/config", json=_SYNTHETIC_CONFIG)
        assert put.status_code == 200, put.text
        post_in_batches(intake, delivered, size=40)
        deals = sorted(wait_for_projection(worker, events, prefix))
        wait_for_history(worker, events, deals)
        _wait_for_dead_letter(worker, stranger["id"])
    read = settled_offsets(stack.database_url, reached={})
    before = projection_rows(stack.database_url)
    assert [row["reason"][:14] for row in before[-1]] == ["unknown_stage:"]
    stack.worker.stop()
    rewind_offsets(stack.database_url)
    assert set(stored_offsets(stack.database_url).values()) == {0}
    stack.worker.start()
    assert settled_offsets(stack.database_url, reached=read) == read
    assert projection_rows(stack.database_url) == before


_SYNTHETIC_CONFIG = {
    "pipelines": [
        {
            "name": "default",
            "stages": [
                stage(name, order, status=status, forecast_category=category)
                for order, (name, status, category) in enumerate(
                    (
                        ("new", "open", "pipeline"),
                        ("proposal", "open", "pipeline"),
                        ("negotiation", "open", "pipeline"),
                        ("closedwon", "won", "closed"),
                        ("closedlost", "lost", "omitted"),
                    ),
                    1,
                )
            ],
        }
    ],
    "default_pipeline": "default",
}
"""Every stage `synthetic_stream` sets, so that only the stranger is refused; a stored
configuration decides won and lost, so its closing stages say so."""


def _wait_for_dead_letter(client: httpx.Client, event_id: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        items = client.get("/v1/forecast/dead-letters", params={"limit": 1000}).json()["items"]
        if any(letter["event_id"] == event_id for letter in items):
            return
        assert time.monotonic() < deadline, "the unknown stage was never dead-lettered"
        time.sleep(0.5)


def _readiness_while_away(url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/readyz", timeout=10)
        if r.status_code == 503:
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError("/readyz never said the broker is away")
