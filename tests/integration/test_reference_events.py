"""Reference data (reps, teams, quotas, invoices) is stored and published for later services."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from shared import topics
from tests.support.events import event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_reference_events_are_published_keyed_by_their_id(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    sent = [
        event(
            "com.salesops.rep.upserted.v1",
            {"rep_id": f"rep-{tag}", "name": "Ana", "team_id": f"team-{tag}"},
            time="2026-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.team.upserted.v1",
            {"team_id": f"team-{tag}", "name": "East"},
            time="2026-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.quota.set.v1",
            {
                "quota_id": f"q-{tag}",
                "rep_id": f"rep-{tag}",
                "period_start": "2026-01-01",
                "period_end": "2026-03-31",
                "amount": "250000.00",
                "currency": "USD",
            },
            time="2026-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.invoice.paid.v1",
            {
                "invoice_id": f"inv-{tag}",
                "deal_id": "d",
                "amount": "99.99",
                "currency": "USD",
                "paid_at": "2026-02-01T00:00:00Z",
            },
            time="2026-02-01T00:00:00Z",
        ),
    ]
    bad_quota = event(
        "com.salesops.quota.set.v1",
        {
            "quota_id": "q",
            "rep_id": "a",
            "team_id": "b",
            "period_start": "2026-01-01",
            "period_end": "2026-03-31",
            "amount": "1",
            "currency": "USD",
        },
        time="2026-01-01T00:00:00Z",
    )
    r = await client.post("/v1/events", json=[*sent, bad_quota])
    assert r.json()["accepted"] == 4
    assert "exactly one of rep_id or team_id" in r.json()["rejected"][0]["reason"]

    async def published() -> bool:
        statuses = [
            (await client.get(f"/v1/events/{e['source']}/{e['id']}")).json()["published"]
            for e in sent
        ]
        return all(statuses)

    await eventually(published)
    consumer = AIOKafkaConsumer(
        topics.REFERENCE,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[str, bytes] = {}
    try:
        for _ in range(20):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for rec in records:
                    body = orjson.loads(rec.value or b"{}")
                    if body.get("id") in {e["id"] for e in sent}:
                        found[body["id"]] = rec.key or b""
            if len(found) == len(sent):
                break
    finally:
        await consumer.stop()
    assert found == {
        sent[0]["id"]: f"rep-{tag}".encode(),
        sent[1]["id"]: f"team-{tag}".encode(),
        sent[2]["id"]: f"q-{tag}".encode(),
        sent[3]["id"]: f"inv-{tag}".encode(),
    }
