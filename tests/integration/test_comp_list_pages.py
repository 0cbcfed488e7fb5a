"""The comp lists page like the ledger: a small `limit` walks every row once, in the
list's order, by `next_cursor` (JSON) or the `X-Next-Cursor` header (CSV), and a forged
cursor answers 400."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import REP_KEY
from tests.support.comp_stack import FLAT_PLAN, on_plan, won_deal
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = FLAT_PLAN

RANGES = (("2025-01-01", None), ("2024-01-01", "2024-07-01"), ("2024-07-01", "2025-01-01"))
"""One rep's assignments, made out of start order."""


async def every_page(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """The items of each page of `path`, following `next_cursor` to the end."""
    pages, cursor = [], None
    while True:
        r = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= params["limit"]
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def lines_won(client: httpx.AsyncClient) -> tuple[str, list[int]]:
    """A rep of its own on the flat plan with two deals won in May 2025: the rep and its
    two ledger line ids."""
    tag = uuid.uuid4().hex[:8]
    rep, deals = f"rep-{tag}", [f"a-{tag}", f"b-{tag}"]
    await on_plan(client, rep=rep, plan_id=f"flat-{tag}", document=PLAN, start="2025-01-01")
    events = [won_deal(d, rep, "1000", "USD", "2025-05-05") for d in deals]
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def both() -> list[int] | None:
        items = (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"]
        return [i["id"] for i in items] if len(items) == 2 else None

    return rep, await eventually(both)


async def test_disputes_page_newest_first_with_their_steps(client: httpx.AsyncClient) -> None:
    """Seven disputes of one rep (six rejected, one open) walked two at a time: each once,
    newest first, each with its own steps; `status` and `rep_id` filter the pages."""
    rep, (line_a, line_b) = await lines_won(client)
    opened: list[int] = []
    for n in range(7):
        line = line_a if n % 2 else line_b
        r = await client.post("/v1/comp/disputes", json={"line_id": line, "comment": f"#{n}"})
        assert r.status_code == 201, r.text
        opened.append(r.json()["id"])
        if n < 6:
            step = {"status": "rejected", "comment": f"reject #{n}"}
            r = await client.post(f"/v1/comp/disputes/{opened[-1]}/steps", json=step)
            assert r.status_code == 200, r.text

    pages = await every_page(client, "/v1/comp/disputes", {"rep_id": rep, "limit": 2})
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    items = [i for page in pages for i in page]
    assert [i["id"] for i in items] == sorted(opened, reverse=True)
    for i in items:
        n = opened.index(i["id"])
        assert i["rep_id"] == rep
        assert i["line_id"] == (line_a if n % 2 else line_b)
        assert [s["comment"] for s in i["steps"]] == [f"#{n}", f"reject #{n}"][: 1 + (n < 6)]
        assert i["status"] == ("rejected" if n < 6 else "open")

    still_open = await every_page(
        client, "/v1/comp/disputes", {"rep_id": rep, "status": "open", "limit": 2}
    )
    assert [[i["id"] for i in p] for p in still_open] == [[opened[-1]]]
    rejected = await every_page(
        client, "/v1/comp/disputes", {"rep_id": rep, "status": "rejected", "limit": 4}
    )
    assert [i["id"] for p in rejected for i in p] == sorted(opened[:6], reverse=True)
    rep_key = {"Authorization": f"Bearer {REP_KEY}"}
    r = await client.get("/v1/comp/disputes", params={"rep_id": rep}, headers=rep_key)
    assert r.status_code == 404
    r = await client.get("/v1/comp/disputes", params={"status": "closed"})
    assert r.status_code == 422
    r = await client.get("/v1/comp/disputes", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


async def test_assignments_page_by_rep_then_start(client: httpx.AsyncClient) -> None:
    """Every assignment walked three at a time: each once, in (rep, start, id) order, the
    ones just made among them; one rep's three walked two at a time."""
    tag = uuid.uuid4().hex[:8]
    plan_id = f"p-{tag}"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2024-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    made: set[int] = set()
    for rep in (f"b-{tag}", f"a-{tag}"):
        for start, end in RANGES:
            body = {"rep_id": rep, "plan_id": plan_id, "start": start, "end": end}
            r = await client.post("/v1/comp/assignments", json=body)
            assert r.status_code == 201, r.text
            made.add(r.json()["id"])

    items = [i for p in await every_page(client, "/v1/comp/assignments", {"limit": 3}) for i in p]
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))
    assert made <= set(ids)
    keys = [(i["rep_id"], i["start"], i["id"]) for i in items]
    assert keys == sorted(keys)

    pages = await every_page(client, "/v1/comp/assignments", {"rep_id": f"a-{tag}", "limit": 2})
    assert [[i["start"] for i in p] for p in pages] == [
        ["2024-01-01", "2024-07-01"],
        ["2025-01-01"],
    ]


async def test_holds_csv_carries_the_next_cursor(client: httpx.AsyncClient) -> None:
    """Active holds as CSV two at a time: `X-Next-Cursor` leads on, each hold comes once in
    id order, and the last page has no header; released holds list with `active=false`."""
    tag = uuid.uuid4().hex[:8]
    made = []
    for n in range(5):
        body = {"scope": "deal", "target": f"d{n}-{tag}", "reason": "paging test"}
        r = await client.post("/v1/comp/holds", json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])

    ids: list[int] = []
    params: dict[str, Any] = {"format": "csv", "limit": 2}
    while True:
        r = await client.get("/v1/comp/holds", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) <= 2
        assert all(row["released_at"] == "" for row in rows)
        ids += [int(row["id"]) for row in rows]
        if "x-next-cursor" not in r.headers:
            break
        assert len(rows) == 2
        params["cursor"] = r.headers["x-next-cursor"]
    assert ids == sorted(set(ids))
    assert set(made) <= set(ids)

    for hold_id in made:
        assert (await client.post(f"/v1/comp/holds/{hold_id}/release")).status_code == 200
    active = await every_page(client, "/v1/comp/holds", {"limit": 1000})
    assert not set(made) & {h["id"] for p in active for h in p}
    released = [
        h
        for p in await every_page(client, "/v1/comp/holds", {"active": "false", "limit": 2})
        for h in p
    ]
    assert set(made) <= {h["id"] for h in released}
    assert all(h["released_at"] is not None for h in released)
