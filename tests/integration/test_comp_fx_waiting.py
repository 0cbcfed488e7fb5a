"""A deal in a currency the comp engine cannot convert waits, listed with the reason, and is
posted once the rate arrives (the rate's PUT marks every rep for recalculation)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = {
    "name": "flat",
    "currency": "USD",
    "target_variable": "0",
    "components": [
        {
            "id": "c",
            "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "10"}]},
        }
    ],
}


async def test_deal_without_a_rate_waits_then_posts(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id, deal = f"rep-{tag}", f"p-{tag}", f"d-{tag}"
    # A currency of its own (X + 2 letters of the tag), so no other test's rate converts it.
    currency = "X" + "".join(chr(ord("A") + int(c, 16) % 26) for c in tag[:2])
    await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2025-01-01"}
    )
    created = event(
        CREATED,
        {
            "deal_id": deal,
            "owner_id": rep,
            "amount": "1000",
            "currency": currency,
            "stage": "closedwon",
            "close_date": "2025-03-03",
        },
        time="2025-03-03T09:00:00Z",
    )
    assert (await client.post("/v1/events", json=[created])).status_code == 202

    async def waits() -> dict[str, Any] | None:
        rows = (await client.get("/v1/comp/waiting")).json()
        return next((w for w in rows if w["subject"] == deal), None)

    wait = await eventually(waits)
    assert wait["rep_id"] == rep
    assert f"{currency}->USD" in wait["reason"]
    assert (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"] == []

    rate = {"base": currency, "quote": "USD", "day": "2025-01-01", "rate": "1.25"}
    assert (await client.put("/v1/comp/fx-rates", json={"rates": [rate]})).status_code == 200

    async def posted() -> list[dict[str, Any]] | None:
        items = (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"]
        return items or None

    (line,) = await eventually(posted)
    assert Decimal(line["amount"]) == Decimal("125.00")
    assert await waits() is None
