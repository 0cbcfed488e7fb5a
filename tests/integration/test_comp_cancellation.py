"""A `deal.cancelled` event through the real stack: a won deal's ledger line, then the
cancellation through POST /v1/events, then a prorated clawback line whose trace names the
cancellation; the forecast keeps the deal won and records the cancellation in its history,
and a cancellation of a deal nobody knows dead-letters nowhere."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.comp_engine.calc.trace_check import recompute
from tests.support.comp_stack import on_plan, won_deal
from tests.support.events import event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

CANCELLED = "com.salesops.deal.cancelled.v1"
PLAN = {
    "name": "flat with cancellations",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "0",
    "components": [
        {
            "id": "c",
            "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "10"}]},
        }
    ],
    "clawback": {"window_days": 365, "triggers": ["cancelled"], "extent": "prorated"},
}


async def lines(client: httpx.AsyncClient, rep: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/comp/ledger", params={"rep_id": rep})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_cancellation_claws_back_prorated_and_the_forecast_keeps_the_deal_won(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id, deal = f"rep-{tag}", f"cancel-{tag}", f"d-{tag}"
    await on_plan(client, rep=rep, plan_id=plan_id, document=PLAN, start="2026-01-01")
    won = won_deal(deal, rep, "12000", "USD", "2026-01-15")
    assert (await client.post("/v1/events", json=[won])).status_code == 202

    async def commission() -> list[dict[str, Any]] | None:
        return await lines(client, rep) or None

    (line,) = await eventually(commission)
    assert (line["kind"], Decimal(line["amount"])) == ("commission", Decimal("1200.00"))

    # 12-month term to 15 January 2027, cancelled after 3 months: 9/12 of 1,200 back.
    cancellation = event(
        CANCELLED,
        {
            "deal_id": deal,
            "cancelled_at": "2026-04-15T12:00:00Z",
            "reason": "customer churned",
            "contract_end": "2027-01-15",
        },
        time="2026-04-16T08:00:00Z",
    )
    result = await client.post("/v1/events", json=[cancellation])
    assert result.status_code == 202
    assert result.json()["rejected"] == []

    async def clawed() -> list[dict[str, Any]] | None:
        found = await lines(client, rep)
        return found if any(item["kind"] == "clawback" for item in found) else None

    after = await eventually(clawed)
    assert len(after) == 2, after
    (claw,) = [item for item in after if item["kind"] == "clawback"]
    assert (claw["deal_id"], claw["period"]) == (deal, "2026-Q2")
    assert Decimal(claw["amount"]) == Decimal("-900.00")
    trace = claw["trace"]
    assert recompute(trace) == Decimal(claw["amount"])
    assert trace["clawback"]["trigger"] == "cancelled"
    assert trace["clawback"]["cancellation"] == {
        "event_id": cancellation["id"],
        "cancelled_at": "2026-04-15T12:00:00+00:00",
        "reason": "customer churned",
        "contract_end": "2027-01-15",
    }
    assert trace["clawback"]["term"] == {
        "start": "2026-01-15",
        "months": "12",
        "elapsed_months": "3",
    }
    assert (trace["earned"], Decimal(trace["extent_factor"])) == ("1200.00", Decimal("0.75"))

    async def recorded() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/deals/{deal}/history")
        versions = r.json()["versions"] if r.status_code == 200 else []
        return versions if len(versions) == 2 else None

    first, last = await eventually(recorded)
    assert first["status"] == last["status"] == "won"
    assert last["amount"] == "12000"
    assert last["properties"]["cancellation"] == {
        "cancelled_at": "2026-04-15T12:00:00Z",
        "reason": "customer churned",
        "contract_end": "2027-01-15",
    }
    assert "cancellation" not in first["properties"]

    # Replaying both events posts nothing more.
    assert (await client.post("/v1/events", json=[won, cancellation])).status_code == 202
    assert len(await lines(client, rep)) == 2


async def test_cancellation_of_an_unknown_deal_dead_letters_nowhere(
    client: httpx.AsyncClient,
) -> None:
    """Like an update of a deal the forecast has never seen, it starts the deal's history
    (open: it carries no stage), and neither consumer dead-letters it."""
    deal = f"unknown-{uuid.uuid4().hex[:8]}"
    cancellation = event(
        CANCELLED,
        {"deal_id": deal, "cancelled_at": "2026-04-15T12:00:00Z", "reason": "duplicate"},
        time="2026-04-15T12:00:00Z",
    )
    assert (await client.post("/v1/events", json=[cancellation])).status_code == 202

    async def recorded() -> dict[str, Any] | None:
        r = await client.get(f"/v1/deals/{deal}")
        return r.json() if r.status_code == 200 else None

    state = await eventually(recorded)
    assert state["status"] == "open"
    assert state["properties"]["cancellation"]["reason"] == "duplicate"
    letters = (await client.get("/v1/forecast/dead-letters", params={"limit": 1000})).json()
    assert not [item for item in letters["items"] if deal in item["payload"]]
