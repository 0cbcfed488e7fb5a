"""Statements through the real stack: lines in plain words, totals, a period closed with a
second admin's approval (payout posted, statement frozen), a later change posted as a
prior-period adjustment into the first open period, and admins' adjustments."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.comp_engine.statements.schemas import STATEMENT_CSV_COLUMNS
from tests.conftest import COMP_ADMIN_KEY
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = {
    "name": "AE",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "10000",
    "components": [
        {
            "id": "nb",
            "rate_table": {
                "basis": "period_amount",
                "tiers": [
                    {"from": "0", "to": "50000", "rate": "10"},
                    {"from": "50000", "rate": "15"},
                ],
            },
        }
    ],
    "clawback": {"window_days": 365, "triggers": ["lost"]},
}


async def statement(client: httpx.AsyncClient, rep: str, period: str) -> dict[str, Any]:
    r = await client.get(f"/v1/comp/statements/{rep}/{period}")
    assert r.status_code == 200, r.text
    return r.json()


async def test_statement_close_and_prior_period_adjustment(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id, deal = f"rep-{tag}", f"ae-{tag}", f"deal-{tag}"
    # Quarters of their own, in years no other test uses (events from the future are
    # refused, and 1971 must stay empty for the as_of-before-any-data tests), so that
    # closing them affects no other test.
    year = 2001 + int(tag[:4], 16) % 14
    q1, q2 = f"{year}-Q1", f"{year}-Q2"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": f"{year}-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": f"{year}-01-01"}
    )
    assert r.status_code == 201, r.text
    created = event(
        CREATED,
        {
            "deal_id": deal,
            "owner_id": rep,
            "amount": "60000",
            "currency": "USD",
            "stage": "closedwon",
            "close_date": f"{year}-02-10",
        },
        time=f"{year}-02-10T12:00:00Z",
    )
    assert (await client.post("/v1/events", json=[created])).status_code == 202

    async def posted() -> dict[str, Any] | None:
        s = await statement(client, rep, q1)
        return s if s["lines"] else None

    s = await eventually(posted)
    (line,) = s["lines"]
    assert Decimal(line["amount"]) == Decimal("6500.00")
    assert "50,000.00 at 10% (tier 1) + 10,000.00 at 15% (tier 2)" in line["explanation"]
    assert Decimal(s["totals"]["USD"]["payable"]) == Decimal("6500.00")
    assert s["closed"] is False

    r = await client.get(f"/v1/comp/statements/{rep}/{q1}", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == STATEMENT_CSV_COLUMNS
    assert len(rows) == 2
    r = await client.get(f"/v1/comp/statements/{rep}/{q1}", params={"format": "html"})
    assert r.headers["content-type"].startswith("text/html")
    assert "6,500.00" in r.text
    assert "<script" not in r.text

    assert (await client.post(f"/v1/comp/periods/{q1}/close")).status_code == 202
    r = await client.post(f"/v1/comp/periods/{q1}/approve")
    assert r.status_code == 403
    other = {"Authorization": f"Bearer {COMP_ADMIN_KEY}"}
    r = await client.post(f"/v1/comp/periods/{q1}/approve", headers=other)
    assert r.status_code == 200, r.text
    assert r.json()["payout_lines"] >= 1
    closed = await statement(client, rep, q1)
    assert closed["closed"] is True
    assert Decimal(closed["totals"]["USD"]["paid"]) == Decimal("6500.00")
    assert Decimal(closed["totals"]["USD"]["balance"]) == 0

    bigger = event(UPDATED, {"deal_id": deal, "amount": "70000"}, time=f"{year}-04-05T12:00:00Z")
    assert (await client.post("/v1/events", json=[bigger])).status_code == 202

    async def adjusted() -> dict[str, Any] | None:
        s = await statement(client, rep, q2)
        return s if s["lines"] else None

    later = await eventually(adjusted)
    (adjustment,) = later["lines"]
    assert (adjustment["earned_in"], Decimal(adjustment["amount"])) == (q1, Decimal("1500.00"))
    assert "Recalculated" in adjustment["explanation"]
    assert await statement(client, rep, q1) == closed

    refused = {
        "rep_id": rep,
        "period": q1,
        "amount": "100",
        "currency": "USD",
        "reason": "missed SPIFF",
    }
    r = await client.post("/v1/comp/adjustments", json=refused)
    assert r.status_code == 409
    assert q2 in r.json()["detail"]
    r = await client.post("/v1/comp/adjustments", json={**refused, "period": q2})
    assert r.status_code == 201, r.text
    final = await statement(client, rep, q2)
    assert any("missed SPIFF" in line["explanation"] for line in final["lines"])
    assert Decimal(final["totals"]["USD"]["earned"]) == Decimal("1600.00")


async def test_a_close_names_the_periods_of_other_lengths_it_does_not_lock(
    client: httpx.AsyncClient,
) -> None:
    """A monthly plan in force over a quarter: closing the quarter does not lock its
    months, and the close says so (periods of plans other tests assign over it may be
    listed too). A year of its own far out, since a close is every rep's and stays
    requested."""
    tag = uuid.uuid4().hex[:8]
    year = 2100 + int(tag, 16) % 100
    plan_id, rep = f"monthly-{tag}", f"rep-{tag}"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": f"{year}-01-01", "document": {**PLAN, "period": "month"}},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/comp/assignments",
        json={"rep_id": rep, "plan_id": plan_id, "start": f"{year}-01-01"},
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/comp/periods/{year}-Q1/close")
    assert r.status_code == 202, r.text
    assert {f"{year}-01", f"{year}-02", f"{year}-03"} <= set(r.json()["not_covered"])
    r = await client.post(f"/v1/comp/periods/{year}-02/close")
    assert r.status_code == 202, r.text
    assert f"{year}-01" not in r.json()["not_covered"]
    assert f"{year}-02" not in r.json()["not_covered"]
    assert f"{year}-Q1" in r.json()["not_covered"]
