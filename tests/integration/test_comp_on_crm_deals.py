"""A deal won in a CRM (Pipedrive webhooks, as published) is clawed back when a billing
system posts its cancellation through `POST /v1/events` naming the CRM's deal id: the one
kind of posted event, with `invoice.paid`, that may name a CRM's deal, since it changes
none of the deal's CRM fields."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.events import event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pipedrive"
PLAN = {
    "name": "AE in reais",
    "currency": "BRL",
    "period": "quarter",
    "target_variable": "0",
    "components": [
        {
            "id": "nb",
            "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "10"}]},
        }
    ],
    "clawback": {"window_days": 90, "triggers": ["cancelled"]},
}


async def test_a_billing_cancellation_claws_back_a_deal_won_in_pipedrive(
    client: httpx.AsyncClient, stack_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    company, owner, rep = str(uuid.uuid4().int % 10**9), "777001", f"rep-{tag}"
    source = {
        "id": f"pd-{tag}",
        "kind": "pipedrive",
        "account_id": company,
        "secrets": {"current": "pd-pass", "basic_user": "salesops"},
        "mapping": {
            "stages": {"1": {"stage": "qualified"}, "2": {"stage": "closedwon"}},
            "owners": {owner: rep},
        },
    }
    assert (await client.put(f"/v1/sources/{source['id']}", json=source)).status_code in (200, 201)
    r = await client.post(
        f"/v1/comp/plans/brl-{tag}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": f"brl-{tag}", "start": "2025-01-01"}
    )
    assert r.status_code == 201, r.text

    basic = base64.b64encode(b"salesops:pd-pass").decode()
    for name in ("v2_deal_create_pipedream.json", "v2_deal_change_won.json"):
        body = copy.deepcopy(json.loads((FIXTURES / name).read_text()))
        body["meta"]["company_id"] = int(company)
        if body["meta"]["action"] == "create":
            body["data"].update(owner_id=int(owner), value=10000)
        r = await client.post(
            f"{stack_url}/v1/webhooks/pipedrive",
            json=body,
            headers={"Authorization": f"Basic {basic}"},
        )
        assert r.status_code == 200, r.text
    deal_id = f"pipedrive:{company}:1"

    async def lines() -> dict[str, Decimal] | None:
        r = await client.get("/v1/comp/ledger", params={"rep_id": rep})
        got = {line["kind"]: Decimal(line["amount"]) for line in r.json()["items"]}
        return got or None

    assert await eventually(lines) == {"commission": Decimal("1000.00")}

    cancellation = {
        "deal_id": deal_id,
        "cancelled_at": "2025-05-01T00:00:00Z",
        "reason": "contract cancelled in billing",
    }
    r = await client.post(
        "/v1/events",
        json=[
            event(
                "com.salesops.deal.cancelled.v1",
                cancellation,
                time="2025-05-01T00:00:00Z",
                source="app://billing",
            )
        ],
    )
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text

    async def clawed() -> dict[str, Decimal] | None:
        got = await lines()
        return got if got and "clawback" in got else None

    assert await eventually(clawed) == {
        "commission": Decimal("1000.00"),
        "clawback": Decimal("-1000.00"),
    }
    deal = (await client.get(f"/v1/deals/{deal_id}")).json()
    assert deal["status"] == "won", "the cancellation changes none of the CRM's fields"
