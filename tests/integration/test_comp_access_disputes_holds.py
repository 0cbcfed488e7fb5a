"""Access by rep and manager keys, disputes through their workflow, and holds, through the
real stack."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import (
    COMP_ADMIN_KEY,
    COMP_READER_KEY,
    KEY_MANAGER,
    KEY_REP,
    MANAGER_KEY,
    REP_KEY,
)
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
REP = {"Authorization": f"Bearer {REP_KEY}"}
MANAGER = {"Authorization": f"Bearer {MANAGER_KEY}"}
COMP_ADMIN = {"Authorization": f"Bearer {COMP_ADMIN_KEY}"}
BI_READER = {"Authorization": f"Bearer {COMP_READER_KEY}"}


async def test_keys_disputes_and_holds(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    other, team, plan_id = f"other-{tag}", f"team-{tag}", f"flat-{tag}"
    mine, theirs = f"mine-{tag}", f"theirs-{tag}"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    for rep in (KEY_REP, other):
        r = await client.post(
            "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2025-01-01"}
        )
        assert r.status_code in (201, 409), r.text
    events = [
        event(
            "com.salesops.team.upserted.v1",
            {"team_id": team, "name": team, "manager_id": KEY_MANAGER},
            time="2025-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.rep.upserted.v1",
            {"rep_id": KEY_REP, "name": "Rep", "team_id": team, "effective_from": "2025-01-01"},
            time="2025-01-01T00:00:00Z",
        ),
    ]
    for deal, owner in ((mine, KEY_REP), (theirs, other)):
        events.append(
            event(
                CREATED,
                {
                    "deal_id": deal,
                    "owner_id": owner,
                    "amount": "1000",
                    "currency": "USD",
                    "stage": "closedwon",
                    "close_date": "2025-05-05",
                },
                time="2025-05-05T10:00:00Z",
            )
        )
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def line_of(deal: str) -> dict[str, Any] | None:
        items = (await client.get("/v1/comp/ledger", params={"limit": 10000})).json()["items"]
        return next((i for i in items if i["deal_id"] == deal), None)

    my_line, their_line = (
        await eventually(lambda: line_of(mine)),
        await eventually(lambda: line_of(theirs)),
    )

    seen = (await client.get("/v1/comp/ledger", headers=REP)).json()["items"]
    assert {i["rep_id"] for i in seen} == {KEY_REP}
    assert my_line["id"] in {i["id"] for i in seen}
    assert (
        await client.get(f"/v1/comp/statements/{other}/2025-Q2", headers=REP)
    ).status_code == 404
    r = await client.get("/v1/comp/ledger", params={"rep_id": other}, headers=REP)
    assert r.status_code == 404
    r = await client.get("/v1/comp/ledger", params={"rep_id": KEY_REP}, headers=MANAGER)
    assert r.status_code == 200
    assert my_line["id"] in {i["id"] for i in r.json()["items"]}
    r = await client.get("/v1/comp/ledger", params={"rep_id": other}, headers=MANAGER)
    assert r.status_code == 404

    r = await client.post(
        "/v1/comp/disputes", headers=REP, json={"line_id": their_line["id"], "comment": "mine?"}
    )
    assert r.status_code == 404
    r = await client.post(
        "/v1/comp/disputes",
        headers=REP,
        json={"line_id": my_line["id"], "comment": "should be 12%"},
    )
    assert r.status_code == 201, r.text
    dispute = r.json()["id"]
    steps = f"/v1/comp/disputes/{dispute}/steps"
    r = await client.post(
        steps,
        headers=REP,
        json={
            "status": "resolved",
            "comment": "ok",
            "adjustment": {"amount": "1", "currency": "USD"},
        },
    )
    assert r.status_code == 403
    r = await client.post(steps, json={"status": "info_requested", "comment": "which deal?"})
    assert r.status_code == 200, r.text
    r = await client.post(steps, headers=REP, json={"status": "open", "comment": "the May one"})
    assert r.status_code == 200, r.text
    r = await client.post(steps, json={"status": "resolved", "comment": "agreed"})
    assert r.status_code == 422
    r = await client.post(
        steps,
        json={
            "status": "resolved",
            "comment": "agreed",
            "adjustment": {"amount": "20.00", "currency": "USD"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["status"] for s in body["steps"]] == ["open", "info_requested", "open", "resolved"]
    assert all(s["author"] and s["comment"] for s in body["steps"])
    adjustment_id = body["steps"][-1]["adjustment_line_id"]
    assert adjustment_id is not None
    r = await client.post(steps, headers=REP, json={"status": "withdrawn", "comment": "late"})
    assert r.status_code == 409

    q2 = (await client.get(f"/v1/comp/statements/{KEY_REP}/2025-Q2", headers=REP)).json()
    assert any(line["line_id"] == adjustment_id for line in q2["lines"])
    before = Decimal(q2["totals"]["USD"]["payable"])
    r = await client.post(
        "/v1/comp/holds", json={"scope": "deal", "target": mine, "reason": "awaiting PO"}
    )
    assert r.status_code == 201, r.text
    held = (await client.get(f"/v1/comp/statements/{KEY_REP}/2025-Q2")).json()
    # The deal's commission and the adjustment that resolved its dispute are both held.
    assert Decimal(held["totals"]["USD"]["held"]) == Decimal("120.00")
    assert Decimal(held["totals"]["USD"]["payable"]) == before - Decimal("120.00")
    r = await client.post(f"/v1/comp/holds/{r.json()['id']}/release")
    assert r.status_code == 200
    released = (await client.get(f"/v1/comp/statements/{KEY_REP}/2025-Q2")).json()
    assert Decimal(released["totals"]["USD"]["payable"]) == before


async def test_assignments_by_key(client: httpx.AsyncClient) -> None:
    """A rep's key lists its own assignments, a manager's its team's, a comp admin's and an
    unbound reader's (BI, finance) every rep's; the unbound reader still manages nothing."""
    tag = uuid.uuid4().hex[:8]
    teammate, outsider, team, plan_id = f"mate-{tag}", f"out-{tag}", f"team-{tag}", f"p-{tag}"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    for rep in (KEY_REP, teammate, outsider):
        r = await client.post(
            "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2025-01-01"}
        )
        assert r.status_code in (201, 409), r.text
    events = [
        event(
            "com.salesops.team.upserted.v1",
            {"team_id": team, "name": team, "manager_id": KEY_MANAGER},
            time="2025-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.rep.upserted.v1",
            {"rep_id": teammate, "name": "Mate", "team_id": team, "effective_from": "2025-01-01"},
            time="2025-01-01T00:00:00Z",
        ),
    ]
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def reps_seen(headers: dict[str, str]) -> set[str]:
        r = await client.get("/v1/comp/assignments", headers=headers)
        assert r.status_code == 200, r.text
        return {a["rep_id"] for a in r.json()}

    assert await reps_seen(REP) == {KEY_REP}
    r = await client.get("/v1/comp/assignments", params={"rep_id": outsider}, headers=REP)
    assert r.status_code == 404
    r = await client.get("/v1/comp/assignments", params={"rep_id": KEY_REP}, headers=REP)
    assert [a["rep_id"] for a in r.json()] == [KEY_REP]

    async def team_seen() -> set[str] | None:
        seen = await reps_seen(MANAGER)
        return seen if teammate in seen else None

    managed = await eventually(team_seen)
    assert outsider not in managed
    r = await client.get("/v1/comp/assignments", params={"rep_id": outsider}, headers=MANAGER)
    assert r.status_code == 404

    for headers in (COMP_ADMIN, BI_READER):
        assert {KEY_REP, teammate, outsider} <= await reps_seen(headers)
        r = await client.get("/v1/comp/assignments", params={"rep_id": outsider}, headers=headers)
        assert [a["rep_id"] for a in r.json()] == [outsider]
        r = await client.get("/v1/comp/ledger", params={"rep_id": outsider}, headers=headers)
        assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/comp/assignments",
        headers=BI_READER,
        json={"rep_id": f"new-{tag}", "plan_id": plan_id, "start": "2025-01-01"},
    )
    assert r.status_code == 403
