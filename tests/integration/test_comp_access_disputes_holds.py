"""Access by rep and manager keys, disputes through their workflow, and holds, through the
real stack."""

from __future__ import annotations

import csv
import functools
import io
import json
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
from tests.support.comp_stack import FLAT_PLAN, on_plan, won_deal
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = FLAT_PLAN
REP = {"Authorization": f"Bearer {REP_KEY}"}
MANAGER = {"Authorization": f"Bearer {MANAGER_KEY}"}
COMP_ADMIN = {"Authorization": f"Bearer {COMP_ADMIN_KEY}"}
BI_READER = {"Authorization": f"Bearer {COMP_READER_KEY}"}


async def team_on_plan(
    client: httpx.AsyncClient, plan_id: str, team: str, *, reps: tuple[str, ...], member: str
) -> list[dict[str, Any]]:
    """`reps` on the flat plan `plan_id` from 2025 (a keyholder may be on it from an earlier
    test: 409), and the events putting `member` in `team`, managed by the manager's key."""
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2025-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    for rep in reps:
        r = await client.post(
            "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2025-01-01"}
        )
        assert r.status_code in (201, 409), r.text
    return [
        event(
            "com.salesops.team.upserted.v1",
            {"team_id": team, "name": team, "manager_id": KEY_MANAGER},
            time="2025-01-01T00:00:00Z",
        ),
        event(
            "com.salesops.rep.upserted.v1",
            {"rep_id": member, "name": member, "team_id": team, "effective_from": "2025-01-01"},
            time="2025-01-01T00:00:00Z",
        ),
    ]


async def keyholders_won(
    client: httpx.AsyncClient, tag: str, deals: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The rep and manager keys' holders set up: KEY_REP on the flat plan (as is `other-{tag}`),
    in a team KEY_MANAGER manages; then each deal of `deals` (deal -> owner) won in May 2025.
    The ledger line of each deal."""
    other, team, plan_id = f"other-{tag}", f"team-{tag}", f"flat-{tag}"
    events = await team_on_plan(client, plan_id, team, reps=(KEY_REP, other), member=KEY_REP)
    for deal, owner in deals.items():
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
        # The owner's lines only: the session's ledger holds every test's lines.
        params: dict[str, str | int] = {"rep_id": deals[deal], "limit": 10000}
        items = (await client.get("/v1/comp/ledger", params=params)).json()["items"]
        return next((i for i in items if i["deal_id"] == deal), None)

    return {deal: await eventually(functools.partial(line_of, deal)) for deal in deals}


async def test_keys_disputes_and_holds(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    other, mine, theirs = f"other-{tag}", f"mine-{tag}", f"theirs-{tag}"
    lines = await keyholders_won(client, tag, {mine: KEY_REP, theirs: other})
    my_line, their_line = lines[mine], lines[theirs]

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
    # The organisation-wide read key (BI, finance) sees the line but speaks for no rep.
    r = await client.post(
        "/v1/comp/disputes", headers=BI_READER, json={"line_id": their_line["id"], "comment": "?"}
    )
    assert r.status_code == 403, r.text
    assert "organisation-wide read key" in r.json()["detail"]
    r = await client.post(steps, headers=BI_READER, json={"status": "withdrawn", "comment": "x"})
    assert r.status_code == 403, r.text
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


def csv_rows(r: httpx.Response) -> list[dict[str, str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


async def test_disputes_rejected_and_withdrawn(client: httpx.AsyncClient) -> None:
    """An admin rejects one dispute (no adjustment), the rep withdraws another; only the
    disputant withdraws (not an admin, not the rep's manager, unless it opened the dispute);
    a final dispute takes no more steps, and its line may be disputed afresh."""
    tag = uuid.uuid4().hex[:8]
    first, second = f"first-{tag}", f"second-{tag}"
    lines = await keyholders_won(client, tag, {first: KEY_REP, second: KEY_REP})

    async def dispute(line: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        r = await client.post(
            "/v1/comp/disputes",
            headers=headers,
            json={"line_id": line["id"], "comment": "rate looks wrong"},
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def step(
        dispute_id: int, status: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await client.post(
            f"/v1/comp/disputes/{dispute_id}/steps",
            headers=headers or {},
            json={"status": status, "comment": f"{status} by test"},
        )

    rejected, withdrawn = await dispute(lines[first], REP), await dispute(lines[second], REP)
    for dispute_id in (rejected["id"], withdrawn["id"]):
        assert (await step(dispute_id, "withdrawn")).status_code == 403
        assert (await step(dispute_id, "withdrawn", MANAGER)).status_code == 403
        assert (await step(dispute_id, "rejected", REP)).status_code == 403

    r = await step(rejected["id"], "info_requested")
    assert r.status_code == 200, r.text
    r = await step(rejected["id"], "rejected")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "rejected"
    assert [s["status"] for s in body["steps"]] == ["open", "info_requested", "rejected"]
    assert body["steps"][-1]["comment"] == "rejected by test"
    assert body["steps"][-1]["adjustment_line_id"] is None
    assert body["steps"][-1]["author"] != rejected["opened_by"]
    assert (await step(rejected["id"], "withdrawn", REP)).status_code == 409

    r = await step(withdrawn["id"], "withdrawn", REP)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "withdrawn"
    assert [s["status"] for s in body["steps"]] == ["open", "withdrawn"]
    assert body["steps"][-1]["author"] == withdrawn["opened_by"]
    assert body["steps"][-1]["adjustment_line_id"] is None
    assert (await step(withdrawn["id"], "rejected")).status_code == 409

    # Neither decision posted anything: the rep's ledger holds the two commissions only.
    items = (await client.get("/v1/comp/ledger", params={"rep_id": KEY_REP})).json()["items"]
    assert {i["id"] for i in items if i["deal_id"] in (first, second)} == {
        lines[first]["id"],
        lines[second]["id"],
    }
    assert not [i for i in items if f"dispute {rejected['id']} " in (i["reason"] or "")]

    # A manager who disputes a line for their rep may withdraw what it opened.
    again = await dispute(lines[second], MANAGER)
    assert again["id"] != withdrawn["id"]
    r = await step(again["id"], "withdrawn", MANAGER)
    assert r.status_code == 200, r.text

    table = csv_rows(await client.get("/v1/comp/disputes", headers={**REP, "Accept": "text/csv"}))
    assert set(table[0]) == {
        "id",
        "line_id",
        "rep_id",
        "status",
        "opened_by",
        "opened_at",
        "steps",
    }
    by_id = {int(row["id"]): row for row in table}
    assert by_id[rejected["id"]]["status"] == "rejected"
    assert by_id[withdrawn["id"]]["status"] == "withdrawn"
    assert by_id[withdrawn["id"]]["line_id"] == str(lines[second]["id"])
    assert {row["rep_id"] for row in table} == {KEY_REP}
    steps = json.loads(by_id[rejected["id"]]["steps"])
    assert [s["status"] for s in steps] == ["open", "info_requested", "rejected"]


async def usd_totals(client: httpx.AsyncClient, rep: str) -> tuple[Decimal, Decimal, Decimal]:
    """The rep's 2025-Q2 statement in USD: (earned, held, payable)."""
    r = await client.get(f"/v1/comp/statements/{rep}/2025-Q2")
    assert r.status_code == 200, r.text
    totals = r.json()["totals"]["USD"]
    return Decimal(totals["earned"]), Decimal(totals["held"]), Decimal(totals["payable"])


async def hold(client: httpx.AsyncClient, scope: str, target: str) -> int:
    r = await client.post(
        "/v1/comp/holds", json={"scope": scope, "target": target, "reason": f"{scope} on hold"}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def release(client: httpx.AsyncClient, hold_id: int) -> None:
    r = await client.post(f"/v1/comp/holds/{hold_id}/release")
    assert r.status_code == 200, r.text


async def two_won_deals(client: httpx.AsyncClient) -> tuple[str, dict[str, dict[str, Any]]]:
    """A rep of its own on the flat plan who won 1,000 and 3,000 in May 2025 (commissions
    100 and 300): the rep and the ledger line of each deal."""
    tag = uuid.uuid4().hex[:8]
    rep, small, large = f"rep-{tag}", f"small-{tag}", f"large-{tag}"
    await on_plan(client, rep=rep, plan_id=f"flat-{tag}", document=PLAN, start="2025-01-01")
    events = [
        won_deal(small, rep, "1000", "USD", "2025-05-05"),
        won_deal(large, rep, "3000", "USD", "2025-05-06"),
    ]
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def both() -> dict[str, dict[str, Any]] | None:
        r = await client.get("/v1/comp/ledger", params={"rep_id": rep})
        found = {i["deal_id"]: i for i in r.json()["items"]}
        return {"small": found[small], "large": found[large]} if len(found) == 2 else None

    lines = await eventually(both)
    assert (Decimal(lines["small"]["amount"]), Decimal(lines["large"]["amount"])) == (
        Decimal("100.00"),
        Decimal("300.00"),
    )
    return rep, lines


async def test_hold_on_a_line(client: httpx.AsyncClient) -> None:
    """A held line is earned but not payable until released; the rep's other line stays
    payable throughout."""
    rep, lines = await two_won_deals(client)
    assert await usd_totals(client, rep) == (Decimal("400.00"), Decimal(0), Decimal("400.00"))

    hold_id = await hold(client, "line", str(lines["large"]["id"]))
    assert await usd_totals(client, rep) == (
        Decimal("400.00"),
        Decimal("300.00"),
        Decimal("100.00"),
    )
    r = await client.get(f"/v1/comp/statements/{rep}/2025-Q2")
    held = {line["line_id"]: line["held"] for line in r.json()["lines"]}
    assert held == {lines["large"]["id"]: True, lines["small"]["id"]: False}
    table = csv_rows(await client.get("/v1/comp/holds", params={"format": "csv", "limit": 1000}))
    (row,) = [row for row in table if row["id"] == str(hold_id)]
    assert (row["scope"], row["target"], row["released_at"]) == (
        "line",
        str(lines["large"]["id"]),
        "",
    )

    await release(client, hold_id)
    assert await usd_totals(client, rep) == (Decimal("400.00"), Decimal(0), Decimal("400.00"))
    table = csv_rows(await client.get("/v1/comp/holds", params={"format": "csv"}))
    assert str(hold_id) not in {row["id"] for row in table}


async def test_hold_on_a_rep(client: httpx.AsyncClient) -> None:
    """A hold on a rep holds every line of theirs, and only theirs; released, all is
    payable again."""
    rep, _ = await two_won_deals(client)
    bystander, _ = await two_won_deals(client)
    hold_id = await hold(client, "rep", rep)
    assert await usd_totals(client, rep) == (Decimal("400.00"), Decimal("400.00"), Decimal(0))
    assert await usd_totals(client, bystander) == (Decimal("400.00"), Decimal(0), Decimal("400.00"))
    await release(client, hold_id)
    assert await usd_totals(client, rep) == (Decimal("400.00"), Decimal(0), Decimal("400.00"))

    table = csv_rows(
        await client.get(
            "/v1/comp/assignments", params={"rep_id": rep}, headers={"Accept": "text/csv"}
        )
    )
    (row,) = table
    assert (row["rep_id"], row["start"], row["end"]) == (rep, "2025-01-01", "")
    assert row["plan_id"].startswith("flat-")


async def test_assignments_by_key(client: httpx.AsyncClient) -> None:
    """A rep's key lists its own assignments, a manager's its team's, a comp admin's and an
    unbound reader's (BI, finance) every rep's; the unbound reader still manages nothing."""
    tag = uuid.uuid4().hex[:8]
    teammate, outsider, team, plan_id = f"mate-{tag}", f"out-{tag}", f"team-{tag}", f"p-{tag}"
    events = await team_on_plan(
        client, plan_id, team, reps=(KEY_REP, teammate, outsider), member=teammate
    )
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def reps_seen(headers: dict[str, str]) -> set[str]:
        seen: set[str] = set()
        params: dict[str, Any] = {"limit": 1000}
        while True:
            r = await client.get("/v1/comp/assignments", params=params, headers=headers)
            assert r.status_code == 200, r.text
            seen |= {a["rep_id"] for a in r.json()["items"]}
            if r.json()["next_cursor"] is None:
                return seen
            params["cursor"] = r.json()["next_cursor"]

    assert await reps_seen(REP) == {KEY_REP}
    r = await client.get("/v1/comp/assignments", params={"rep_id": outsider}, headers=REP)
    assert r.status_code == 404
    r = await client.get("/v1/comp/assignments", params={"rep_id": KEY_REP}, headers=REP)
    assert [a["rep_id"] for a in r.json()["items"]] == [KEY_REP]

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
        assert [a["rep_id"] for a in r.json()["items"]] == [outsider]
        r = await client.get("/v1/comp/ledger", params={"rep_id": outsider}, headers=headers)
        assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/comp/assignments",
        headers=BI_READER,
        json={"rep_id": f"new-{tag}", "plan_id": plan_id, "start": "2025-01-01"},
    )
    assert r.status_code == 403
