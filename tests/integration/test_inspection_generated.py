"""Deal inspection over the seeded generator's history (`services/datasets/generator.py`):
the deals flagged `pushed` are those the generator pushed more than `max_pushes` times, with
that count in the reason, and `past_close_date` those whose last close date is before the
inspection's day; closed deals are never flagged. Expected sets come from the generator's
own record of what it did (each change's kind), not from the inspection's rules."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import yaml

from services.datasets.generator import DealPlan, HistoryParams, deal_history
from tests.integration.test_forecast_rollup import EXAMPLE
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_forecast_config")]

AS_OF = date(1961, 3, 1)
BUSY = HistoryParams(max_changes=10, push_probability=0.5)


async def _flagged(client: httpx.AsyncClient, tag: str, max_pushes: int) -> list[dict[str, Any]]:
    """Every row of the run's deals, page by page (the inspection sees every open deal)."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {
            "as_of_date": AS_OF.isoformat(),
            "max_pushes": max_pushes,
            "limit": 1000,
        }
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/forecast/inspection", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        rows += [row for row in page["rows"] if row["deal_id"].startswith(tag)]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


@pytest.mark.timeout(300)
async def test_inspection_flags_what_the_generator_did(client: httpx.AsyncClient) -> None:
    put = await client.put("/v1/forecast/config", json=yaml.safe_load(EXAMPLE.read_text()))
    assert put.status_code == 200, put.text
    tag = f"ig-{uuid.uuid4().hex[:8]}"
    reps = [f"{tag}-r{n}" for n in range(3)]
    rng = random.Random(11)
    plans = [
        DealPlan(
            deal_id=f"{tag}-d{n:02d}",
            owner_id=rng.choice(reps),
            created=datetime(1960, rng.randint(1, 6), rng.randint(1, 28), tzinfo=UTC),
            amount=Decimal(rng.randint(10, 90) * 100),
            end=datetime(1961, rng.randint(1, 6), rng.randint(1, 28), tzinfo=UTC),
            outcome=None if n < 40 else ("won", "lost")[n % 2],
        )
        for n in range(50)
    ]
    events: list[dict[str, Any]] = []
    pushes: Counter[str] = Counter()
    last_close: dict[str, date] = {}
    for plan in plans:
        created = {
            "deal_id": plan.deal_id,
            "owner_id": plan.owner_id,
            "stage": "Engaging",
            "amount": str(plan.amount),
            "currency": "XTS",
        }
        events.append(event(CREATED, created, time=plan.created))
        for change in deal_history(plan, seed=3, reps=reps, params=BUSY, source="test://suite"):
            events.append(change.event)
            pushes[plan.deal_id] += change.kind == "push"
            if "close_date" in change.event["data"]:
                last_close[plan.deal_id] = date.fromisoformat(change.event["data"]["close_date"])
        if plan.outcome is not None:
            closing = {"deal_id": plan.deal_id, "stage": plan.outcome.title()}
            events.append(event(UPDATED, closing, time=plan.end, sequence=1))
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    open_ids = {p.deal_id for p in plans if p.outcome is None}
    assert max(pushes[d] for d in open_ids) > 2, "the generator pushed some deals often"

    per_deal = Counter(ev["data"]["deal_id"] for ev in events)

    async def applied() -> bool:
        """Every deal has a version per event (no two of a deal's events share a time)."""
        for deal_id, count in per_deal.items():
            r = await client.get(f"/v1/deals/{deal_id}/history")
            if r.status_code != 200 or len(r.json()["versions"]) != count:
                return False
        return True

    await eventually(applied, within=120)
    for max_pushes in (0, 1, 2):
        rows = await _flagged(client, tag, max_pushes)
        assert {row["deal_id"] for row in rows} <= open_ids, "closed deals are never flagged"
        pushed = {row["deal_id"]: row["reason"] for row in rows if row["rule"] == "pushed"}
        assert set(pushed) == {d for d in open_ids if pushes[d] > max_pushes}, max_pushes
        for deal_id, reason in pushed.items():
            assert reason.startswith(f"close date pushed {pushes[deal_id]} times"), reason
        past = {row["deal_id"] for row in rows if row["rule"] == "past_close_date"}
        assert past == {d for d in open_ids if d in last_close and last_close[d] < AS_OF}
