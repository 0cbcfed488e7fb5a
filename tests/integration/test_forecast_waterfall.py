"""The pipeline waterfall through the real stack: a hand-made period with one deal per
bucket, every number asserted, and a seeded history checked against `as_of` reads."""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.datasets.generator import HistoryParams, OrgParams, synthetic_org
from services.forecast_worker.waterfall.flow import INFLOWS, Bucket
from services.forecast_worker.waterfall.schemas import ROW_CSV_COLUMNS
from shared.periods import parse_period
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v1"
BUCKETS = [b.value for b in Bucket]
ZERO_ROW = {"start": "0", **dict.fromkeys(BUCKETS, "0"), "end": "0"}


async def post(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    for at in range(0, len(events), 500):
        r = await client.post("/v1/events", json=events[at : at + 500])
        assert r.status_code == 202, r.text
        assert r.json()["rejected"] == [], r.text


def balances(row: dict[str, str]) -> bool:
    moved = sum(
        (Decimal(row[b]) if Bucket(b) in INFLOWS else -Decimal(row[b]) for b in BUCKETS),
        Decimal(0),
    )
    return Decimal(row["start"]) + moved == Decimal(row["end"])


def scenario(tag: str, year: int) -> list[dict[str, Any]]:
    """Period {year}-Q2, seen from {year}-03-01 to {year}-05-01: one deal per bucket."""
    early, between = f"{year}-02-01T00:00:00Z", f"{year}-04-01T00:00:00Z"
    out: list[dict[str, Any]] = [
        event(TEAM, {"team_id": f"a-{tag}", "name": "A", "manager_id": f"ma-{tag}"}, time=early),
        event(TEAM, {"team_id": f"b-{tag}", "name": "B", "manager_id": f"mb-{tag}"}, time=early),
    ]
    for rep, team, since in (("r1", "a", "01-01"), ("r2", "a", "01-01"), ("r2", "b", "04-01")):
        data = {"rep_id": f"{rep}-{tag}", "name": rep, "team_id": f"{team}-{tag}"}
        out.append(event(REP, {**data, "effective_from": f"{year}-{since}"}, time=early))

    def deal(name: str, at: str, close: str, amount: str, owner: str = "r1") -> None:
        data = {
            "deal_id": f"{name}-{tag}",
            "name": name,
            "owner_id": f"{owner}-{tag}",
            "amount": amount,
            "currency": "EUR",
            "stage": "Engaging",
            "close_date": f"{year}-{close}",
        }
        out.append(event(CREATED, data, time=at))

    def update(name: str, at: str, **fields: str) -> None:
        out.append(event(UPDATED, {"deal_id": f"{name}-{tag}", **fields}, time=at))

    deal("created", between, "05-15", "100")
    deal("pulled", early, "08-15", "200")
    update("pulled", between, close_date=f"{year}-06-01")
    deal("increased", early, "05-10", "300")
    update("increased", between, amount="350")
    deal("decreased", early, "05-10", "400")
    update("decreased", between, amount="380")
    deal("pushed", early, "06-10", "500")
    update("pushed", between, close_date=f"{year}-07-15")
    deal("lost", early, "06-10", "600")
    update("lost", between, stage="Lost", status="lost", close_date=f"{year}-04-02")
    deal("won", early, "06-20", "700")
    update("won", between, stage="Won", status="won", amount="750", close_date=f"{year}-04-02")
    deal("through", f"{year}-03-10T00:00:00Z", "04-05", "800")
    update("through", f"{year}-04-05T00:00:00Z", stage="Won", status="won")
    deal("moved", early, "05-20", "900", owner="r2")
    deal("steady", early, "06-01", "1000")
    return out


def row(group: str | None, start: str, end: str, **buckets: str) -> dict[str, Any]:
    return {"group": group, "currency": "EUR", **ZERO_ROW, "start": start, "end": end, **buckets}


async def test_one_deal_per_bucket(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    year = random.Random(tag).randint(1800, 1999)
    await post(client, scenario(tag, year))
    params = {
        "period": f"{year}-Q2",
        "from": f"{year}-03-01T00:00:00Z",
        "to": f"{year}-05-01T00:00:00+00:00",
    }
    flows = {
        "created": "900",
        "pulled_in": "200",
        "increased": "100",
        "decreased": "20",
        "pushed_out": "500",
        "lost": "600",
        "won": "1550",
    }
    expected = [row(None, "4400", "2930", **flows)]
    by_team = [
        row(f"a-{tag}", "4400", "2030", **flows, moved_out="900"),
        row(f"b-{tag}", "0", "900", moved_in="900"),
    ]

    async def answer(**extra: str) -> dict[str, Any]:
        r = await client.get("/v1/forecast/waterfall", params={**params, **extra})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def settled() -> dict[str, Any] | None:
        body = await answer(group_by="team")
        return body if body["rows"] == by_team else None

    teams = await eventually(settled)
    assert teams["period"] == f"{year}-Q2"
    assert teams["group_by"] == "team"
    assert (teams["from"], teams["to"]) == (f"{year}-03-01T00:00:00Z", f"{year}-05-01T00:00:00Z")
    whole = await answer()
    assert whole["rows"] == expected
    assert whole["group_by"] is None
    assert all(balances(r) for r in [*whole["rows"], *teams["rows"]])
    by_rep = await answer(group_by="rep")
    assert [(r["group"], r["start"], r["end"]) for r in by_rep["rows"]] == [
        (f"r1-{tag}", "3500", "2030"),
        (f"r2-{tag}", "900", "900"),
    ]

    text = (await client.get("/v1/forecast/waterfall", params={**params, "format": "csv"})).text
    (line,) = list(csv.DictReader(io.StringIO(text)))
    assert list(line) == list(ROW_CSV_COLUMNS)
    assert line == {**{k: str(v) for k, v in expected[0].items()}, "group": ""}

    members = {
        "created": {"created": "100", "through": "800"},
        "pulled_in": {"pulled": "200"},
        "increased": {"increased": "50", "won": "50"},
        "decreased": {"decreased": "20"},
        "pushed_out": {"pushed": "500"},
        "lost": {"lost": "600"},
        "won": {"won": "750", "through": "800"},
        "moved_in": {},
        "moved_out": {},
    }
    for bucket, deals in members.items():
        r = await client.get("/v1/forecast/waterfall/deals", params={**params, "bucket": bucket})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert {i["deal_id"]: i["amount"] for i in items} == {
            f"{d}-{tag}": a for d, a in deals.items()
        }, bucket
        assert sum(Decimal(a) for a in deals.values()) == Decimal(expected[0][bucket])
    won = (
        await client.get(
            "/v1/forecast/waterfall/deals", params={**params, "bucket": "won", "limit": 1}
        )
    ).json()
    assert won["items"] == [
        {
            "deal_id": f"through-{tag}",
            "group": None,
            "currency": "EUR",
            "bucket": "won",
            "amount": "800",
            "before_status": None,
            "before_close_date": None,
            "before_amount": None,
            "after_status": "won",
            "after_close_date": f"{year}-04-05",
            "after_amount": "800",
        }
    ]
    rest = await client.get(
        "/v1/forecast/waterfall/deals",
        params={**params, "bucket": "won", "cursor": won["next_cursor"], "format": "csv"},
    )
    (won_line,) = list(csv.DictReader(io.StringIO(rest.text)))
    assert (won_line["deal_id"], won_line["before_close_date"], won_line["after_amount"]) == (
        f"won-{tag}",
        f"{year}-06-20",
        "750",
    )
    moved = await client.get(
        "/v1/forecast/waterfall/deals",
        params={**params, "bucket": "moved_in", "group_by": "team", "group": f"b-{tag}"},
    )
    assert [(i["deal_id"], i["amount"]) for i in moved.json()["items"]] == [(f"moved-{tag}", "900")]


async def test_bad_input(client: httpx.AsyncClient) -> None:
    base = {"period": "2026-Q2", "from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}
    r = await client.get("/v1/forecast/waterfall", params={**base, "period": "2026-Q5"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "query.period"
    r = await client.get("/v1/forecast/waterfall", params={**base, "from": "2026-06-01T00:00:00Z"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "query.from"
    r = await client.get("/v1/forecast/waterfall", params={**base, "from": "2026-03-01T00:00:00"})
    assert r.status_code == 422
    early = {"period": "1701-Q1", "from": "1700-01-01T00:00:00Z", "to": "1700-02-01T00:00:00Z"}
    r = await client.get("/v1/forecast/waterfall", params=early)
    assert r.status_code == 200
    assert r.json()["rows"] == []
    r = await client.get("/v1/forecast/waterfall/deals", params={**early, "bucket": "won"})
    assert r.json() == {"items": [], "next_cursor": None}


async def open_pipeline(
    client: httpx.AsyncClient, at: datetime, start: date, end: date
) -> dict[str, Decimal]:
    """The period's open pipeline per currency, summed here from `as_of` deal reads."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    cursor: str | None = None
    while True:
        params = {"as_of": at.isoformat(), "status": "open", "limit": "1000"}
        params |= {"close_date_from": start.isoformat(), "close_date_to": end.isoformat()}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/deals", params=params)).json()
        for deal in page["items"]:
            if deal["close_date"] < end.isoformat():
                out[deal["currency"]] += Decimal(deal["amount"] or 0)
        cursor = page["next_cursor"]
        if cursor is None:
            return {c: a for c, a in out.items() if a}


_TAGGED = ("deal_id", "owner_id", "rep_id", "team_id", "manager_id")


def tagged(ev: dict[str, Any], tag: str) -> dict[str, Any]:
    """The event with its id and every entity id prefixed: a history of this run only."""
    data = {k: f"{tag}-{v}" if k in _TAGGED and v else v for k, v in ev["data"].items()}
    return {**ev, "id": f"{tag}:{ev['id']}", "data": data}


async def test_seeded_history_balances_and_matches_as_of(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    # Reassignments are rare by default; more of them make moved_in/moved_out by rep.
    busy = HistoryParams(reassign_probability=0.2)
    org = OrgParams(start=date(2019, 1, 1), end=date(2020, 1, 1), history=busy)
    events = [tagged(e, tag) for e in synthetic_org(seed=8, reps=12, deals=50, params=org)]
    await post(client, events)
    per_deal = Counter(e["data"]["deal_id"] for e in events if "deal_id" in e["data"])

    async def applied() -> bool:
        for deal_id, count in per_deal.items():
            r = await client.get(f"/v1/deals/{deal_id}/history")
            if r.status_code != 200 or len(r.json()["versions"]) != count:
                return False
        return True

    await eventually(applied, within=120)
    config = (await client.get("/v1/forecast/config")).json()
    pairs = [
        ("2019-Q2", "2019-02-01", "2019-05-15"),
        ("2019-Q3", "2019-06-15", "2019-08-31"),
        ("2019-Q3", "2019-07-01", "2019-07-01"),
        ("2019-Q4", "2019-09-01", "2019-11-15"),
        ("2019-11", "2019-10-01", "2019-11-20"),
        ("2019-12", "2019-11-01", "2019-12-15"),
        ("FY2019", "2018-12-01", "2019-12-31"),
        ("FY2019", "2019-06-01", "2019-10-01"),
    ]
    seen: set[str] = set()
    for label, first, second in pairs:
        period = parse_period(label, config["fiscal_year_start_month"])
        at_from = datetime.fromisoformat(f"{first}T12:00:00+00:00")
        at_to = datetime.fromisoformat(f"{second}T15:30:00+00:00")
        query = {"period": label, "from": at_from.isoformat(), "to": at_to.isoformat()}
        before = await open_pipeline(client, at_from, period.start, period.end)
        after = await open_pipeline(client, at_to, period.start, period.end)
        for group_by in (None, "rep", "team", "region"):
            extra = {"group_by": group_by} if group_by else {}
            r = await client.get("/v1/forecast/waterfall", params={**query, **extra})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            assert all(balances(x) for x in rows), (label, group_by, rows)
            assert totals(rows, "start") == before, (label, group_by)
            assert totals(rows, "end") == after, (label, group_by)
            seen |= {b for x in rows for b in BUCKETS if Decimal(x[b])}
    assert seen == set(BUCKETS), "the history exercises every bucket"


def totals(rows: list[dict[str, str]], column: str) -> dict[str, Decimal]:
    """Per currency over the groups: moved_in and moved_out cancel, so start and end add up."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        out[r["currency"]] += Decimal(r[column])
    return {c: a for c, a in out.items() if a}
