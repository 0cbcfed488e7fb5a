"""POST /v1/comp/simulate on the real stack: a vendor's worked example inline, the stored
deals under a draft plan against the current one, and a body over the cap."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import yaml

from services.comp_engine.calc.trace_check import recompute
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SPIFF_MAMOUNT = {
    "name": "Spiff mamount example",
    "currency": "USD",
    "period": "year",
    "target_variable": "0",
    "components": [
        {
            "id": "arr",
            "rate_table": {
                "basis": "period_amount",
                "tiers": [
                    {"from": "0", "to": "150000", "rate": "4"},
                    {"from": "150000", "to": "250000", "rate": "6"},
                    {"from": "250000", "rate": "8"},
                ],
            },
        }
    ],
}


def won(deal_id: str, amount: str, day: str, owner: str = "r1") -> dict[str, Any]:
    return {
        "deal_id": deal_id,
        "changes": [
            {
                "time": f"{day}T10:00:00Z",
                "type": "created",
                "fields": {
                    "owner_id": owner,
                    "amount": amount,
                    "currency": "USD",
                    "status": "won",
                    "close_date": day,
                },
            }
        ],
    }


async def test_inline_worked_example(client: httpx.AsyncClient) -> None:
    """Salesforce Spiff `mamount` (Trailhead): 145,000 closed, then a 20,000 deal pays 1,100
    (5,000 at 4%, 15,000 at 6%)."""
    body = {
        "plan": SPIFF_MAMOUNT,
        "today": "2026-12-31",
        "inline": {
            "deals": [won("earlier", "145000", "2026-03-01"), won("new", "20000", "2026-06-01")],
            "assignments": [{"rep_id": "r1", "start": "2026-01-01"}],
        },
    }
    r = await client.post("/v1/comp/simulate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    by_deal = {line["deal_id"]: line for line in out["lines"]}
    assert Decimal(by_deal["new"]["amount"]) == Decimal("1100.00")
    assert Decimal(by_deal["earlier"]["amount"]) == Decimal("5800.00")
    assert [Decimal(x["simulated"]) for x in out["reps"]] == [Decimal("6900.00")]
    for line in out["lines"]:
        assert recompute(line["trace"]) == Decimal(line["amount"])
    assert (await client.get("/v1/comp/ledger", params={"rep_id": "r1"})).json()["items"] == []
    as_yaml = await client.post(
        "/v1/comp/simulate",
        content=yaml.safe_dump(body),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert as_yaml.status_code == 200, as_yaml.text
    assert as_yaml.json() == out


async def test_stored_deals_under_a_draft_plan(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id = f"rep-{tag}", f"cur-{tag}"
    current = {
        **SPIFF_MAMOUNT,
        "period": "quarter",
        "components": [
            {
                "id": "c",
                "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "10"}]},
            }
        ],
    }
    await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2024-01-01", "document": current},
    )
    await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2024-01-01"}
    )
    deal = event(
        CREATED,
        {
            "deal_id": f"d-{tag}",
            "owner_id": rep,
            "amount": "10000",
            "currency": "USD",
            "stage": "closedwon",
            "close_date": "2024-05-05",
        },
        time="2024-05-05T10:00:00Z",
    )
    assert (await client.post("/v1/events", json=[deal])).status_code == 202

    async def posted() -> list[dict[str, Any]] | None:
        r = await client.get("/v1/comp/ledger", params={"rep_id": rep})
        return r.json()["items"] or None

    await eventually(posted)
    draft = {
        **current,
        "components": [
            {
                "id": "c",
                "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "12"}]},
            }
        ],
    }
    stored = {"from": "2024-01-01", "to": "2025-01-01", "compare_to_plan": plan_id}
    body = {"plan": draft, "stored": stored}
    # Today the rep's ledger is current and was computed today: the plans-as-they-are
    # side is read from it. Half a year on (past a quarter's start, where the lines of a
    # plan with draws or minimums can change) it is computed again: the same figures.
    later = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    for today, from_ledger in ((None, 1), (later, 0)):
        r = await client.post("/v1/comp/simulate", json={**body, "today": today})
        assert r.status_code == 200, r.text
        assert r.json()["current_from_ledger"] == from_ledger
        (row,) = r.json()["reps"]
        assert (row["rep_id"], Decimal(row["current"]), Decimal(row["simulated"])) == (
            rep,
            Decimal("1000.00"),
            Decimal("1200.00"),
        )
        assert Decimal(r.json()["total_difference"]["USD"]) == Decimal("200.00")
        assert r.json()["lines"] == []
    assert len((await posted()) or []) == 1

    # One rep's simulated lines, with the traces the ledger would hold.
    shown = {**body, "stored": {**stored, "lines_for_rep": rep}}
    r = await client.post("/v1/comp/simulate", json=shown)
    assert r.status_code == 200, r.text
    (line,) = r.json()["lines"]
    assert (line["rep_id"], line["kind"], Decimal(line["amount"])) == (
        rep,
        "commission",
        Decimal("1200.00"),
    )
    assert line["trace"]["plan"] == {"id": "simulated", "version": 1}
    assert line["trace"]["credit"]["deal_id"] == f"d-{tag}"
    outsider = {**body, "stored": {**stored, "lines_for_rep": f"nobody-{tag}"}}
    r = await client.post("/v1/comp/simulate", json=outsider)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["location"] == "body.stored.lines_for_rep"


async def test_a_body_over_the_cap_is_refused(client: httpx.AsyncClient) -> None:
    deals = [won(f"d{i:07d}", "1", "2026-01-01") for i in range(12_000)]
    body = {
        "plan": SPIFF_MAMOUNT,
        "inline": {"deals": deals, "assignments": [{"rep_id": "r", "start": "2026-01-01"}]},
    }
    r = await client.post("/v1/comp/simulate", json=body)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
