"""A consumer that meets an event it cannot apply dead-letters it and keeps going."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import create_async_engine

from services.forecast_worker.models import CONSUMER_TABLES
from shared import consumer_store, topics
from shared.dispatch import DeadLetter, Record
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_unapplicable_records_go_to_the_dlq_and_can_be_replayed(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    deal = f"dlq-{uuid.uuid4().hex[:10]}"
    later_good = event(
        CREATED,
        {"deal_id": deal, "name": "after", "owner_id": "r", "stage": "s"},
        time="2026-06-01T00:00:00Z",
    )
    broken_ev = event(
        CREATED,
        {"deal_id": deal, "name": "x", "owner_id": "r", "stage": "s", "amount": "1"},
        time="2026-06-01T00:00:00Z",
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # Written straight to the topic, as a buggy or foreign producer might.
        await producer.send_and_wait(topics.DEAL, key=deal.encode(), value=b"\xff not json")
        await producer.send_and_wait(topics.DEAL, key=deal.encode(), value=orjson.dumps(broken_ev))
        await producer.send_and_wait(topics.DEAL, key=deal.encode(), value=orjson.dumps(later_good))
    finally:
        await producer.stop()

    async def applied() -> bool:
        return (await client.get(f"/v1/deals/{deal}")).status_code == 200

    await eventually(applied)

    async def letters() -> list[dict[str, object]] | None:
        items = (await client.get("/v1/forecast/dead-letters", params={"limit": 1000})).json()[
            "items"
        ]
        mine = [
            i
            for i in items
            if deal.encode() in str(i["payload"]).encode() or i["event_id"] == broken_ev["id"]
        ]
        return mine if len(mine) >= 1 else None

    mine = await eventually(letters)
    reasons = " ".join(str(i["reason"]) for i in mine)
    assert "currency is required" in reasons

    raw_letters = [
        i
        for i in (await client.get("/v1/forecast/dead-letters", params={"limit": 1000})).json()[
            "items"
        ]
        if "not JSON" in str(i["reason"])
    ]
    assert raw_letters, "the undecodable record is dead-lettered with its reason"

    replay = await client.post(f"/v1/forecast/dead-letters/{mine[0]['id']}/replay")
    assert replay.status_code == 422
    assert replay.headers["content-type"] == "application/problem+json"
    assert "currency is required" in replay.json()["detail"]

    dlq = AIOKafkaConsumer(
        topics.dlq(topics.DEAL), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await dlq.start()
    try:
        batch = await dlq.getmany(timeout_ms=5000)
        payloads = [r.value for rs in batch.values() for r in rs]
    finally:
        await dlq.stop()
    assert any(broken_ev["id"].encode() in (p or b"") for p in payloads)


async def test_replaying_a_fixed_dead_letter_applies_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """A record dead-lettered for a transient cause (say, a database error) replays once."""
    deal = f"dlq-fix-{uuid.uuid4().hex[:10]}"
    good = event(
        CREATED,
        {"deal_id": deal, "name": "n", "owner_id": "r", "stage": "s"},
        time="2026-06-02T00:00:00Z",
    )
    record = Record(topics.DEAL, 0, 10**9, orjson.dumps(good))
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await consumer_store.insert_dead_letters(
                conn,
                tables=CONSUMER_TABLES,
                letters=[DeadLetter.of(record, "OperationalError: connection lost")],
            )
    finally:
        await engine.dispose()
    items = (await client.get("/v1/forecast/dead-letters", params={"limit": 1000})).json()["items"]
    letter = next(i for i in items if i["event_id"] == good["id"])

    replay = await client.post(f"/v1/forecast/dead-letters/{letter['id']}/replay")
    assert replay.status_code == 200, replay.text
    assert replay.json()["replayed_at"] is not None
    deal_now = await client.get(f"/v1/deals/{deal}")
    assert deal_now.status_code == 200
    assert deal_now.json()["name"] == "n"

    again = await client.post(f"/v1/forecast/dead-letters/{letter['id']}/replay")
    assert again.status_code == 409
    open_items = (await client.get("/v1/forecast/dead-letters", params={"limit": 1000})).json()[
        "items"
    ]
    assert letter["id"] not in {i["id"] for i in open_items}
