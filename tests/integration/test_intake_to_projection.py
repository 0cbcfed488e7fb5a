"""Intake -> event log -> relay -> topic -> projection, against real Postgres and broker."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import READER_KEY, WRITER_KEY
from tests.support.events import CREATED, DELETED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _deal_id() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


async def _deal(client: httpx.AsyncClient, deal_id: str, **params: str) -> dict[str, Any] | None:
    r = await client.get(f"/v1/deals/{deal_id}", params=params)
    return r.json() if r.status_code == 200 else None


async def _wait_version(client: httpx.AsyncClient, deal_id: str, version: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        deal = await _deal(client, deal_id)
        return deal if deal and deal["version"] >= version else None

    return await eventually(probe, within=60)


async def test_event_flows_to_deal_with_history_and_as_of(client: httpx.AsyncClient) -> None:
    deal = _deal_id()
    created = event(
        CREATED,
        {
            "deal_id": deal,
            "name": "Acme",
            "owner_id": "rep-1",
            "amount": "1000.10",
            "currency": "usd",
            "stage": "discovery",
            "close_date": "2026-12-31",
        },
        time="2026-11-01T10:00:00Z",
    )
    won = event(UPDATED, {"deal_id": deal, "stage": "closedwon"}, time="2026-11-05T10:00:00Z")
    r = await client.post("/v1/events", json=[created, won])
    assert r.status_code == 202
    assert r.json() == {"accepted": 2, "duplicates": 0, "rejected": []}

    current = await _wait_version(client, deal, 2)
    assert current["stage"] == "closedwon"
    assert current["status"] == "won"
    assert current["amount"] == "1000.10"
    assert current["currency"] == "USD"

    earlier = await _deal(client, deal, as_of="2026-11-03T00:00:00Z")
    assert earlier is not None
    assert (earlier["stage"], earlier["status"], earlier["version"]) == ("discovery", "open", 1)
    assert await _deal(client, deal, as_of="2026-10-01T00:00:00Z") is None

    history = (await client.get(f"/v1/deals/{deal}/history")).json()["versions"]
    assert [(v["version"], v["valid_from"], v["valid_to"]) for v in history] == [
        (1, "2026-11-01T10:00:00Z", "2026-11-05T10:00:00Z"),
        (2, "2026-11-05T10:00:00Z", None),
    ]

    stored = await client.get(f"/v1/events/{created['source']}/{created['id']}")
    assert stored.status_code == 200
    body = stored.json()
    assert body["published"] is True
    assert body["topic"] == "crm.deal.v1"
    assert body["partition_key"] == deal


async def test_late_older_event_never_overwrites_newer_value(client: httpx.AsyncClient) -> None:
    deal = _deal_id()
    create = event(
        CREATED,
        {
            "deal_id": deal,
            "name": "Late",
            "owner_id": "rep-2",
            "stage": "s1",
            "amount": "10",
            "currency": "EUR",
        },
        time="2026-01-01T00:00:00Z",
    )
    newer = event(UPDATED, {"deal_id": deal, "amount": "30"}, time="2026-01-03T00:00:00Z")
    await client.post("/v1/events", json=[create, newer])
    await _wait_version(client, deal, 2)

    older = event(
        UPDATED, {"deal_id": deal, "amount": "20", "stage": "s2"}, time="2026-01-02T00:00:00Z"
    )
    await client.post("/v1/events", json=older)
    current = await _wait_version(client, deal, 3)
    assert current["amount"] == "30", "an older amount must not replace a newer one"
    assert current["stage"] == "s2", (
        "a field the newer event did not touch still takes the late value"
    )
    history = (await client.get(f"/v1/deals/{deal}/history")).json()["versions"]
    assert [v["amount"] for v in history] == ["10", "20", "30"]
    assert [v["valid_from"][:10] for v in history] == ["2026-01-01", "2026-01-02", "2026-01-03"]


async def test_duplicates_are_reported_and_applied_once(client: httpx.AsyncClient) -> None:
    deal = _deal_id()
    ev = event(
        CREATED,
        {"deal_id": deal, "name": "Dup", "owner_id": "r", "stage": "s"},
        time="2026-02-01T00:00:00Z",
    )
    first = await client.post("/v1/events", json=[ev, ev])
    assert first.json()["accepted"] == 1
    assert first.json()["duplicates"] == 1
    again = await client.post("/v1/events", json=ev)
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    await _wait_version(client, deal, 1)
    history = (await client.get(f"/v1/deals/{deal}/history")).json()["versions"]
    assert len(history) == 1


async def test_batch_with_bad_events_accepts_the_good_ones(client: httpx.AsyncClient) -> None:
    deal = _deal_id()
    good = event(
        CREATED,
        {"deal_id": deal, "name": "Ok", "owner_id": "r", "stage": "s"},
        time="2026-03-01T00:00:00Z",
    )
    float_amount = event(UPDATED, {"deal_id": deal, "amount": 12.5}, time="2026-03-02T00:00:00Z")
    unknown = event(
        "com.salesops.deal.teleported.v1", {"deal_id": deal}, time="2026-03-02T00:00:00Z"
    )
    r = await client.post("/v1/events", json=[float_amount, good, unknown, "nope"])
    body = r.json()
    assert r.status_code == 202
    assert body["accepted"] == 1
    reasons = {item["index"]: item["reason"] for item in body["rejected"]}
    assert set(reasons) == {0, 2, 3}
    assert "data.amount" in reasons[0]
    assert "unknown event type" in reasons[2]
    assert body["rejected"][0]["id"] == float_amount["id"]
    await _wait_version(client, deal, 1)


async def test_ndjson_intake(client: httpx.AsyncClient) -> None:
    deal = _deal_id()
    lines = [
        event(
            CREATED,
            {"deal_id": deal, "name": "N", "owner_id": "r", "stage": "a"},
            time="2026-04-01T00:00:00Z",
        ),
        event(UPDATED, {"deal_id": deal, "stage": "b"}, time="2026-04-02T00:00:00Z"),
        event(DELETED, {"deal_id": deal}, time="2026-04-03T00:00:00Z"),
    ]
    body = b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
    r = await client.post(
        "/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.json()["accepted"] == 3
    deleted = await _wait_version(client, deal, 3)
    assert deleted["deleted"] is True
    listed = (await client.get("/v1/deals", params={"owner_id": "r", "limit": 1000})).json()
    assert deal not in {d["deal_id"] for d in listed["items"]}
    with_deleted = await client.get(
        "/v1/deals", params={"owner_id": "r", "include_deleted": "true", "limit": 1000}
    )
    assert deal in {d["deal_id"] for d in with_deleted.json()["items"]}


async def test_list_filters_pagination_and_csv(client: httpx.AsyncClient) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    deals = [_deal_id() for _ in range(5)]
    events = [
        event(
            CREATED,
            {
                "deal_id": d,
                "name": d,
                "owner_id": owner,
                "stage": "closedlost" if i == 0 else "proposal",
                "amount": f"{i}00.5",
                "currency": "USD",
                "close_date": f"2026-0{i + 1}-15",
            },
            time="2026-05-01T00:00:00Z",
        )
        for i, d in enumerate(deals)
    ]
    await client.post("/v1/events", json=events)

    async def all_there() -> list[dict[str, Any]] | None:
        items = (await client.get("/v1/deals", params={"owner_id": owner})).json()["items"]
        return items if len(items) == 5 else None

    await eventually(all_there)
    page1 = (await client.get("/v1/deals", params={"owner_id": owner, "limit": 2})).json()
    page2 = (
        await client.get(
            "/v1/deals", params={"owner_id": owner, "limit": 2, "cursor": page1["next_cursor"]}
        )
    ).json()
    page3 = (
        await client.get(
            "/v1/deals", params={"owner_id": owner, "limit": 2, "cursor": page2["next_cursor"]}
        )
    ).json()
    seen = [d["deal_id"] for p in (page1, page2, page3) for d in p["items"]]
    assert seen == sorted(deals)
    assert page3["next_cursor"] is None

    lost = (await client.get("/v1/deals", params={"owner_id": owner, "status": "lost"})).json()
    assert [d["deal_id"] for d in lost["items"]] == [deals[0]]
    window = (
        await client.get(
            "/v1/deals",
            params={
                "owner_id": owner,
                "close_date_from": "2026-02-01",
                "close_date_to": "2026-03-31",
            },
        )
    ).json()
    assert sorted(d["deal_id"] for d in window["items"]) == sorted(deals[1:3])

    r = await client.get("/v1/deals", params={"owner_id": owner, "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["deal_id"] for row in rows] == sorted(deals)
    assert {row["deal_id"]: row["amount"] for row in rows}[deals[1]] == "100.5"
    by_accept = await client.get(
        "/v1/deals", params={"owner_id": owner}, headers={"Accept": "text/csv"}
    )
    assert by_accept.text == r.text


async def test_bad_requests_are_problem_details(client: httpx.AsyncClient, stack_url: str) -> None:
    malformed = await client.post(
        "/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["type"].endswith("/bad-request")

    too_big = await client.post(
        "/v1/events",
        content=b"[" + b" " * (6 * 1024 * 1024) + b"]",
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["status"] == 413

    too_many = [event(UPDATED, {"deal_id": "x", "stage": "s"}, time="2026-01-01T00:00:00Z")] * 1001
    assert (await client.post("/v1/events", json=too_many)).status_code == 413

    async with httpx.AsyncClient(base_url=stack_url) as anonymous:
        missing = await anonymous.post("/v1/events", json=[])
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        wrong = await anonymous.get("/v1/deals", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        reader = await anonymous.post(
            "/v1/events", json=[], headers={"Authorization": f"Bearer {READER_KEY}"}
        )
        assert reader.status_code == 403
        writer = await anonymous.get("/v1/deals", headers={"Authorization": f"Bearer {WRITER_KEY}"})
        assert writer.status_code == 403

    bad_query = await client.get("/v1/deals", params={"as_of": "yesterday"})
    assert bad_query.status_code == 422
    assert bad_query.json()["errors"][0]["location"] == "query.as_of"
    bad_cursor = await client.get("/v1/deals", params={"cursor": "!!!"})
    assert bad_cursor.status_code == 400
    missing_deal = await client.get("/v1/deals/no-such-deal")
    assert missing_deal.status_code == 404
    assert missing_deal.json()["detail"] == "No deal 'no-such-deal'."


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/events", "/v1/deals", "/v1/deals/{deal_id}/history"} <= set(spec["paths"])
    own = (await client.get("/services/forecast_worker/openapi.json")).json()
    assert "/v1/deals" in own["paths"]
    assert "/v1/events" not in own["paths"]
    metrics = (await client.get("/metrics")).text
    assert "salesops_intake_events_total" in metrics
