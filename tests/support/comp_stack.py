"""Steps the commission tests on the real stack share: a rep put on a plan through the comp
API, and a deal won through a canonical event."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.events import CREATED, event

FLAT_PLAN: dict[str, Any] = {
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
"""10% of every won deal, by the quarter: the plan whose arithmetic a test need not read."""


async def on_plan(
    client: httpx.AsyncClient, *, rep: str, plan_id: str, document: dict[str, Any], start: str
) -> None:
    """Version 1 of `plan_id` from `start`, and `rep` on it from then."""
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions", json={"effective_from": start, "document": document}
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": start}
    )
    assert r.status_code == 201, r.text


def won_deal(deal: str, rep: str, amount: str, currency: str, day: str) -> dict[str, Any]:
    """A `deal.created` of a deal won on `day` (its close date), at noon that day."""
    data = {
        "deal_id": deal,
        "owner_id": rep,
        "amount": amount,
        "currency": currency,
        "stage": "closedwon",
        "close_date": day,
    }
    return event(CREATED, data, time=f"{day}T12:00:00Z")
