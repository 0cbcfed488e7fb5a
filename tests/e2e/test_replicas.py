"""Several pipeline_api replicas, as production runs them: one relay publishes at a time,
so each deal's events reach Kafka in log order, and a stand-by takes over when the
leader dies."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.cli import run_migrations
from shared import topics
from shared.embedded import EmbeddedBroker
from tests.e2e.checks import post_in_batches
from tests.e2e.conftest import ServiceProcess, service_env
from tests.support import infra
from tests.support.events import CREATED, UPDATED, event

pytestmark = pytest.mark.e2e

DEALS = 16
EVENTS_PER_DEAL = 1200
CHUNK = 100
WARM_UP = 20


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[str, EmbeddedBroker, list[ServiceProcess]]]:
    """Two pipeline_api processes on one database and broker."""
    with infra.test_database() as url:
        run_migrations(url)
        broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
        broker.start()
        env = service_env(url, broker.bootstrap)
        services = [
            ServiceProcess("pipeline_api", env, tmp_path / name)
            for name in ("replica-a", "replica-b")
        ]
        try:
            for service in services:
                service.log_path.parent.mkdir()
                service.start()
            yield url, broker, services
        finally:
            for service in services:
                service.stop()
            broker.stop()


def _deal_events(n: int) -> list[dict[str, Any]]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    created = event(
        CREATED,
        {
            "deal_id": f"rep-{n}",
            "name": f"Replicated {n}",
            "owner_id": "r",
            "stage": "new",
            "amount": "1.00",
            "currency": "EUR",
        },
        time=start,
    )
    updates = [
        event(
            UPDATED,
            {"deal_id": f"rep-{n}", "amount": f"{u + 2}.00"},
            time=start + timedelta(minutes=u + 1),
        )
        for u in range(EVENTS_PER_DEAL - 1)
    ]
    return [created, *updates]


def _post_deals(clients: list[httpx.Client], deals: list[list[dict[str, Any]]]) -> None:
    """Each deal's events one after the other (each acknowledged before the next is sent),
    alternating between replicas, with every deal in a thread of its own."""

    def post(events: list[dict[str, Any]]) -> None:
        for i in range(0, len(events), CHUNK):
            post_in_batches(clients[i // CHUNK % len(clients)], events[i : i + CHUNK], size=CHUNK)

    with ThreadPoolExecutor(len(deals)) as pool:
        list(pool.map(post, deals))


def _leader(services: list[ServiceProcess]) -> ServiceProcess:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for service in services:
            if "salesops_relay_leader 1.0" in httpx.get(f"{service.url}/metrics").text:
                return service
        time.sleep(0.2)
    raise AssertionError("no relay leads")


async def _deal_records(bootstrap: str, expected: int) -> dict[bytes, list[int]]:
    """Every deal record on the topic, per key, as log seqs in the order Kafka holds them.
    Read until `expected` distinct events came (a resend after a takeover repeats some),
    and then until the topic is quiet; never past an overall deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topics.DEAL) or set()
        tps = [TopicPartition(topics.DEAL, p) for p in partitions]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        per_key: dict[bytes, list[int]] = defaultdict(list)
        distinct: set[tuple[bytes, int]] = set()
        deadline = time.monotonic() + 120
        quiet_until = time.monotonic() + 10
        while len(distinct) < expected or time.monotonic() < quiet_until:
            assert time.monotonic() < deadline, f"{len(distinct)} of {expected} events read"
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for r in records:
                    seq = int(dict(r.headers)[topics.HEADER_LOG_SEQ])
                    per_key[r.key or b""].append(seq)
                    distinct.add((r.key or b"", seq))
                    quiet_until = time.monotonic() + 2
            if not batch and len(distinct) >= expected:
                break
        return per_key
    finally:
        await consumer.stop()


def _published(url: str) -> int:
    sql = "SELECT count(*) FROM pipeline.events WHERE published_at IS NOT NULL"
    return int(asyncio.run(infra.query(url, sql))[0][0])


def _wait_published(url: str, count: int) -> None:
    deadline = time.monotonic() + 90
    while (published := _published(url)) < count:
        assert time.monotonic() < deadline, f"{published} of {count} events published"
        time.sleep(0.2)


def test_replicas_publish_each_deal_in_log_order_and_take_over(
    replicas: tuple[str, EmbeddedBroker, list[ServiceProcess]],
) -> None:
    url, broker, services = replicas
    deals = [_deal_events(n) for n in range(DEALS)]
    half = EVENTS_PER_DEAL // 2
    clients = [
        httpx.Client(base_url=s.url, timeout=30, headers={"Authorization": "Bearer test-admin-key"})
        for s in services
    ]
    try:
        _post_deals(clients, [events[:WARM_UP] for events in deals])
        _wait_published(url, DEALS * WARM_UP)
        # Faster than one relay drains: concurrent relays would split the backlog
        # between them, batch by batch.
        _post_deals(clients, [events[WARM_UP:half] for events in deals])
        _wait_published(url, DEALS * half)
        leader = _leader(services)
        leader.sigkill()
        survivor = [c for c, s in zip(clients, services, strict=True) if s is not leader]
        _post_deals(survivor, [events[half:] for events in deals])
    finally:
        for client in clients:
            client.close()

    total = DEALS * EVENTS_PER_DEAL
    _wait_published(url, total)
    stored = asyncio.run(
        infra.query(
            url, "SELECT partition_key, seq FROM pipeline.events WHERE topic = :t", t=topics.DEAL
        )
    )
    assert len(stored) == total
    per_key = asyncio.run(_deal_records(broker.bootstrap, total))

    out_of_order = {}
    for key, seqs in per_key.items():
        first_seen = list(dict.fromkeys(seqs))  # a resend after a takeover repeats, harmless
        inversions = [(a, b) for a, b in itertools.pairwise(first_seen) if b < a]
        if inversions:
            out_of_order[key] = inversions[:3]
    assert not out_of_order, f"{len(out_of_order)} deals out of log order: {out_of_order}"
    want: dict[bytes, set[int]] = defaultdict(set)
    for key, seq in (tuple(row) for row in stored):
        want[str(key).encode()].add(int(seq))
    assert {k: set(v) for k, v in per_key.items()} == want, "every stored event is on the topic"
