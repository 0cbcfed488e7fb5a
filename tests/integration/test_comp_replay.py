"""Recomputing and replaying add nothing to the ledger: a generated history of won, changed,
lost and re-won deals posts its lines; marking every rep for recalculation again, and
delivering the whole stream again, shuffled, leave the ledger exactly as it was."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.db import create_engine
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = {
    "name": "tiers and clawbacks",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "20000",
    "quota": "100000",
    "components": [
        {
            "id": "c",
            "rate_table": {
                "basis": "attainment",
                "mode": "retroactive",
                "tiers": [{"from": "0", "to": "100", "rate": "6"}, {"from": "100", "rate": "9"}],
            },
            "decelerator": {"threshold": "30", "multiplier": "0.5"},
        }
    ],
    "clawback": {
        "window_days": 60,
        "triggers": ["lost", "amount_reduced"],
        "reduces_attainment": True,
    },
    "credit_rules": {"roles": {"overlay": {"quota": False, "payout": True}}},
}


def history(tag: str, reps: list[str], seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    start = datetime(2025, 1, 6, tzinfo=UTC)
    for n in range(30):
        deal, owner = f"{tag}-{n}", rnd.choice(reps)
        at = start + timedelta(days=rnd.randrange(300))
        fields: dict[str, Any] = {
            "deal_id": deal,
            "owner_id": owner,
            "amount": str(rnd.randrange(5, 60) * 1000),
            "currency": "USD",
            "stage": "closedwon",
            "close_date": at.date().isoformat(),
        }
        if rnd.random() < 0.2:
            fields["splits"] = [
                {"rep_id": owner, "percent": "100", "role": "owner"},
                {"rep_id": rnd.choice(reps), "percent": "30", "role": "overlay"},
            ]
        events.append(event(CREATED, fields, time=at))
        for _ in range(rnd.randrange(3)):
            at += timedelta(days=rnd.randrange(1, 90))
            change = rnd.choice(
                [
                    {"amount": str(rnd.randrange(5, 60) * 1000)},
                    {"stage": "closedlost"},
                    {"stage": "closedwon"},
                ]
            )
            events.append(event(UPDATED, {"deal_id": deal, **change}, time=at))
    return [e for e in events if e["time"] < "2026-11-01"]


async def ledger(client: httpx.AsyncClient, reps: list[str]) -> list[tuple[Any, ...]]:
    found = []
    for rep in reps:
        for line in (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"]:
            found.append((line["id"], line["kind"], line["deal_id"], line["amount"]))
    return sorted(found)


async def test_recompute_and_replay_add_nothing(
    client: httpx.AsyncClient, database_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    reps, plan_id = [f"rep-{tag}-{i}" for i in range(3)], f"p-{tag}"
    await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    for rep in reps:
        await client.post(
            "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2025-01-01"}
        )
    events = history(tag, reps, seed=int(tag[:6], 16))
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    engine = create_engine(database_url, application_name="salesops-comp-replay-test")

    async def settled() -> list[tuple[Any, ...]] | None:
        async with engine.connect() as conn:
            applied = await conn.scalar(
                text("SELECT count(*) FROM comp.deal_changes WHERE deal_id LIKE :p"),
                {"p": f"{tag}-%"},
            )
            dirty = await conn.scalar(
                text("SELECT count(*) FROM comp.dirty_reps WHERE rep_id LIKE :p"),
                {"p": f"rep-{tag}-%"},
            )
        return await ledger(client, reps) if applied == len(events) and dirty == 0 else None

    try:
        before = await eventually(settled)
        assert before
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO comp.dirty_reps (rep_id) SELECT unnest(CAST(:r AS text[])) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"r": reps},
            )
        assert await eventually(settled) == before
        random.Random(1).shuffle(events)
        assert (await client.post("/v1/events", json=events)).status_code == 202
        assert await eventually(settled) == before
    finally:
        await engine.dispose()
