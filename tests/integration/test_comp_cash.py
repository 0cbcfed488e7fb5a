"""Pay on cash and the payout cap through the real stack: a won deal on a plan paid on cash
is earned and withheld, an `invoice.paid` event releases its share, the statements add up,
a hold released after its period closed is paid at the next close; and simulate returns
the cash and payout cap lines too."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.comp_engine.calc.trace_check import recompute
from tests.conftest import COMP_ADMIN_KEY
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

INVOICE = "com.salesops.invoice.paid.v1"
OTHER_ADMIN = {"Authorization": f"Bearer {COMP_ADMIN_KEY}"}
PLAN = {
    "name": "AE on cash",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "0",
    "components": [
        {
            "id": "nb",
            "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "10"}]},
        }
    ],
    "payment": {"timing": "on_cash"},
}


async def statement(client: httpx.AsyncClient, rep: str, period: str) -> dict[str, Any]:
    r = await client.get(f"/v1/comp/statements/{rep}/{period}")
    assert r.status_code == 200, r.text
    return r.json()


async def post(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def close(client: httpx.AsyncClient, period: str) -> None:
    assert (await client.post(f"/v1/comp/periods/{period}/close")).status_code == 202
    r = await client.post(f"/v1/comp/periods/{period}/approve", headers=OTHER_ADMIN)
    assert r.status_code == 200, r.text


async def test_won_on_cash_then_paid_releases_and_statements_add_up(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id, deal = f"rep-{tag}", f"cash-{tag}", f"deal-{tag}"
    # A year of its own that no other test closes (they use 2001-2014 and 2025-2026).
    year = 1985 + int(tag[:4], 16) % 14
    q1, q2, q3 = f"{year}-Q1", f"{year}-Q2", f"{year}-Q3"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": f"{year}-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": f"{year}-01-01"}
    )
    assert r.status_code == 201, r.text
    fields = {
        "deal_id": deal,
        "owner_id": rep,
        "amount": "10000",
        "currency": "USD",
        "stage": "closedwon",
        "close_date": f"{year}-02-10",
    }
    await post(client, event(CREATED, fields, time=f"{year}-02-10T12:00:00Z"))

    async def booked() -> dict[str, Any] | None:
        s = await statement(client, rep, q1)
        return s if {line["kind"] for line in s["lines"]} >= {"payable_deferral"} else None

    s = await eventually(booked)
    assert {line["kind"]: Decimal(line["amount"]) for line in s["lines"]} == {
        "commission": Decimal("1000.00"),
        "payable_deferral": Decimal("-1000.00"),
    }
    totals = s["totals"]["USD"]
    assert Decimal(totals["earned"]) == Decimal("1000.00")
    assert Decimal(totals["withheld_for_cash"]) == Decimal("1000.00")
    assert Decimal(totals["payable"]) == 0
    assert "withheld until their invoices are paid" in totals["explained"]["withheld_for_cash"]

    paid = {
        "invoice_id": f"inv-{tag}",
        "deal_id": deal,
        "amount": "4000.00",
        "currency": "USD",
        "paid_at": f"{year}-04-05T09:00:00Z",
    }
    await post(client, event(INVOICE, paid, time=f"{year}-04-05T09:00:00Z"))

    async def released() -> dict[str, Any] | None:
        s = await statement(client, rep, q2)
        return s if s["lines"] else None

    s = await eventually(released)
    (line,) = s["lines"]
    assert (line["kind"], Decimal(line["amount"])) == ("payable_release", Decimal("400.00"))
    assert line["trace"]["cash_release"]["invoices"][0]["invoice_id"] == f"inv-{tag}"
    assert recompute(line["trace"]) == Decimal("400.00")
    assert f"inv-{tag} 4,000.00 USD on {year}-04-05" in line["explanation"]
    totals = s["totals"]["USD"]
    assert Decimal(totals["released_by_cash"]) == Decimal("400.00")
    assert Decimal(totals["payable"]) == Decimal("400.00")
    r = await client.get(
        f"/v1/comp/statements/{rep}/{q2}", params={"format": "csv", "part": "totals"}
    )
    assert "released_by_cash,400.00" in r.text
    r = await client.get(f"/v1/comp/statements/{rep}/{q2}", params={"format": "html"})
    assert "released by cash" in r.text

    r = await client.post(
        "/v1/comp/holds", json={"scope": "deal", "target": deal, "reason": "disputed invoice"}
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    await close(client, q2)
    closed = await statement(client, rep, q2)
    assert Decimal(closed["totals"]["USD"]["held"]) == Decimal("400.00")
    assert Decimal(closed["totals"]["USD"]["paid"]) == 0
    assert (await client.post(f"/v1/comp/holds/{hold_id}/release")).status_code == 200
    assert await statement(client, rep, q2) == closed, "a closed period's statement is frozen"
    await close(client, q3)
    assert await statement(client, rep, q2) == closed
    after = await statement(client, rep, q3)
    totals = after["totals"]["USD"]
    assert Decimal(totals["paid"]) == Decimal("400.00")
    assert Decimal(totals["paid_for_earlier"]) == Decimal("400.00")
    assert Decimal(totals["balance"]) == 0


def won(deal_id: str, amount: str, day: str) -> dict[str, Any]:
    fields = {
        "owner_id": "r1",
        "amount": amount,
        "currency": "USD",
        "status": "won",
        "close_date": day,
    }
    return {
        "deal_id": deal_id,
        "changes": [{"time": f"{day}T10:00:00Z", "type": "created", "fields": fields}],
    }


async def test_simulate_inline_shows_cash_and_payout_cap_lines(client: httpx.AsyncClient) -> None:
    """frappe/erpnext#25239 (https://github.com/frappe/erpnext/issues/25239) with a payout
    cap as Oracle's PAY_EXCESS_LATER_FLAG
    (https://docs.oracle.com/en/cloud/saas/sales/oedms/cnpaymentplansallb-25934.html): a
    10,000 sale at 10%, 5,000 paid in Q1 releases 500, of which the 300 cap pays 300 and
    carries 200 into Q2."""
    plan = {**PLAN, "payment": {"timing": "on_cash", "max_payable_per_period": "300"}}
    body = {
        "plan": plan,
        "today": "2026-06-30",
        "inline": {
            "deals": [won("d", "10000", "2026-01-05")],
            "assignments": [{"rep_id": "r1", "start": "2026-01-01"}],
            "payments": [
                {
                    "deal_id": "d",
                    "invoice_id": "inv-1",
                    "paid_at": "2026-02-01T00:00:00Z",
                    "amount": "5000",
                    "currency": "USD",
                }
            ],
        },
    }
    r = await client.post("/v1/comp/simulate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    got = {(line["period"], line["kind"]): Decimal(line["amount"]) for line in out["lines"]}
    assert got == {
        ("2026-Q1", "commission"): Decimal("1000.00"),
        ("2026-Q1", "payable_deferral"): Decimal("-1000.00"),
        ("2026-Q1", "payable_release"): Decimal("500.00"),
        ("2026-Q1", "payout_cap_excess"): Decimal("-200.00"),
        ("2026-Q2", "payout_cap_carry_in"): Decimal("200.00"),
    }
    for line in out["lines"]:
        assert recompute(line["trace"]) == Decimal(line["amount"])
    assert [Decimal(x["simulated"]) for x in out["reps"]] == [Decimal("500.00")]
