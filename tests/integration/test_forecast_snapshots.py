"""Snapshots against the real stack: backfilled weekly, on demand and as of one instant,
each equal to the `as_of` roll-up of its instant; the scheduler's step taking each due slot
exactly once, also when two replicas step at once; the trend in order; bad input.

As in test_forecast_rollup.py, each test names its reps and teams with a unique tag, uses
the test currency XTS, reads only its own rows, and uses periods no other test snapshots
(the stack's own scheduler snapshots only the quarters around today)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text, update

from services.forecast_worker.dispatch import GROUP_ID
from services.forecast_worker.models import CONSUMER_TABLES
from services.forecast_worker.snapshots.scheduler import consumer_caught_up, take_due
from shared import topics
from shared.db import create_engine, create_sessionmaker
from tests.conftest import FORECASTER_KEY, make_settings
from tests.integration.test_forecast_rollup import (
    CURRENCY,
    GROUPINGS,
    _example_config,
    mine,
    post,
    rep,
    rollup,
    team,
)
from tests.support.cli import salesops
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["_example_config"]
"""The roll-up tests' example configuration, applied around each test here too."""

FORECASTER = {"Authorization": f"Bearer {FORECASTER_KEY}"}
FAILED = "salesops_forecast_snapshots_failed_total"


def created(deal_id: str, owner: str, amount: str, close: str, time: str, **more: str) -> Any:
    data = {
        "deal_id": deal_id,
        "name": deal_id,
        "owner_id": owner,
        "stage": "Prospecting",
        "amount": amount,
        "currency": CURRENCY,
        "close_date": close,
        **more,
    }
    return event(CREATED, data, time=time)


def closed(deal_id: str, outcome: str, time: str) -> Any:
    data = {"deal_id": deal_id, "stage": outcome.title(), "status": outcome}
    return event(UPDATED, data, time=time, sequence=1)


async def placed(client: httpx.AsyncClient, reps: list[str], day: str) -> bool:
    """The reps are in their teams on `day` (reference events travel on their own topic,
    so they may lag the deals)."""
    r = await client.get("/v1/forecast/hierarchy", params={"as_of": day})
    teams = {row["rep_id"]: row["team_name"] for row in r.json()["items"]}
    return all(teams.get(rep) for rep in reps)


async def post_snapshot(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/forecast/snapshots{path}", json=body, headers=FORECASTER)


async def trend(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    r = await client.get("/v1/forecast/snapshots", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def own(rows: list[dict[str, Any]], tag: str) -> dict[str | None, dict[str, Any]]:
    return mine({"rows": rows}, tag, null_group=False)


Figures = list[tuple[str, str, str]]


def figures(rows: dict[str | None, dict[str, Any]]) -> Figures:
    """(closed_won, commit, best_case) of the test's two groups, r1's side (rep r1, team A,
    its manager and region, each named to sort first) then r2's."""
    return [
        (rows[g]["closed_won"], rows[g]["commit"], rows[g]["best_case"])
        for g in sorted(rows, key=str)
    ]


def posted(as_of: str) -> Figures:
    """What the events the backfill test posts make of each side at `as_of`, worked out
    here: r1 has s1 (Engaging, a best case, 1000 then 1500 from 1 June) and s2 (its own
    category commit, 200, won on 1 June); r2 has s3 (Engaging, 400)."""
    r1 = ("200", "0", "1500") if as_of >= "2026-06-01" else ("0", "200", "1000")
    return [r1, ("0", "0", "400")]


async def test_backfill_on_demand_and_the_trend_equal_the_as_of_rollup(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid4().hex[:8]
    r1, r2 = f"r1-{tag}", f"r2-{tag}"
    s1, s2, s3 = (f"s{n}-{tag}" for n in (1, 2, 3))
    await post(
        client,
        team(tag, "A", "north", "2026-01-01"),
        team(tag, "B", "south", "2026-01-01"),
        rep(r1, f"A-{tag}", "2026-01-01"),
        rep(r2, f"B-{tag}", "2026-01-01"),
        created(s1, r1, "1000", "2098-05-10", "2026-03-02T00:00:00Z", stage="Engaging"),
        created(s2, r1, "200", "2098-05-11", "2026-03-02T00:00:00Z", forecast_category="commit"),
        created(s3, r2, "400", "2098-05-12", "2026-03-02T00:00:00Z", stage="Engaging"),
        closed(s2, "won", "2026-06-01T00:00:00Z"),
        event(UPDATED, {"deal_id": s1, "amount": "1500"}, time="2026-06-01T00:00:00Z"),
    )

    async def applied() -> dict[str | None, dict[str, Any]] | None:
        rows = mine(await rollup(client, period="2098-Q2", group_by="rep"), tag, null_group=False)
        done = rows.get(r1, {}).get("best_case") == "1500" and rows.get(r2)
        return rows if done and rows[r1]["closed_won"] == "200" else None

    await eventually(lambda: placed(client, [r1, r2], "2026-05-01"))
    live = await eventually(applied)

    body = {"period": "2098-Q2", "from": "2026-05-01", "to": "2026-06-30", "every": "week"}
    first = await post_snapshot(client, "/backfill", body)
    assert first.status_code == 201, first.text
    mondays = ["05-04", "05-11", "05-18", "05-25", "06-01", "06-08", "06-15", "06-22", "06-29"]
    instants = [f"2026-{d}T00:00:00Z" for d in mondays]
    assert [s["as_of"] for s in first.json()["taken"]] == instants
    assert {s["kind"] for s in first.json()["taken"]} == {"backfill"}
    again = await post_snapshot(client, "/backfill", body)
    assert (again.json()["taken"], again.json()["already_taken"]) == ([], instants)

    for group_by in GROUPINGS:
        points = (await trend(client, period="2098-Q2", group_by=group_by))["snapshots"]
        assert [p["as_of"] for p in points] == instants, "in order, each instant once"
        for point in points:
            then = await rollup(client, period="2098-Q2", group_by=group_by, as_of=point["as_of"])
            assert own(point["rows"], tag) == mine(then, tag, null_group=False), point["as_of"]
            assert figures(own(point["rows"], tag)) == posted(point["as_of"]), point["as_of"]
    points = (await trend(client, period="2098-Q2", group_by="rep"))["snapshots"]
    before, after = (own(p["rows"], tag)[r1] for p in points[3:5])
    assert (before["closed_won"], before["commit"], before["best_case"]) == ("0", "200", "1000")
    assert (after["closed_won"], after["commit"], after["best_case"]) == ("200", "0", "1500")

    now = await post_snapshot(client, "", {"period": "2098-Q2"})
    assert now.status_code == 201, now.text
    snapshot = now.json()
    assert (snapshot["kind"], snapshot["period"]["label"]) == ("on_demand", "2098-Q2")
    assert own(snapshot["rows"]["rep"], tag) == live
    assert set(snapshot["rows"]) == set(GROUPINGS)

    one = {"period": "2098-Q2", "as_of": "2026-05-20T12:00:00Z"}
    taken = await post_snapshot(client, "", one)
    assert taken.status_code == 201, taken.text
    assert taken.json()["kind"] == "backfill"
    then = await rollup(client, period="2098-Q2", group_by="team", as_of=one["as_of"])
    assert own(taken.json()["rows"]["team"], tag) == mine(then, tag, null_group=False)
    assert figures(own(taken.json()["rows"]["region"], tag)) == posted(one["as_of"])
    repeated = await post_snapshot(client, "", one)
    assert repeated.status_code == 200, "one instant is backfilled once"
    assert repeated.json() == taken.json()

    points = (await trend(client, period="2098-Q2", group_by="rep"))["snapshots"]
    assert [p["as_of"] for p in points] == sorted(p["as_of"] for p in points)
    assert [p["id"] for p in points if p["kind"] != "backfill"] == [snapshot["id"]]
    window = await trend(
        client,
        period="2098-Q2",
        group_by="rep",
        kind="backfill",
        **{"from": "2026-05-18T00:00:00Z", "to": "2026-05-25T00:00:00Z"},
    )
    as_of = ["2026-05-18T00:00:00Z", "2026-05-20T12:00:00Z", "2026-05-25T00:00:00Z"]
    assert [p["as_of"] for p in window["snapshots"]] == as_of

    text = (
        await client.get(
            "/v1/forecast/snapshots",
            params={"period": "2098-Q2", "group_by": "team", "format": "csv"},
        )
    ).text
    lines = [r for r in csv.DictReader(text.splitlines()) if r["group"] == f"A-{tag}"]
    assert list(lines[0])[:8] == [
        "snapshot_id", "as_of", "kind", "taken_by", "taken_at", "group_by", "group", "currency",
    ]  # fmt: skip
    assert [(r["as_of"], r["closed_won"]) for r in lines][4:6] == [
        ("2026-05-25T00:00:00Z", "0"),
        ("2026-06-01T00:00:00Z", "200"),
    ]

    got = await client.get(f"/v1/forecast/snapshots/{snapshot['id']}")
    assert got.json() == snapshot
    only = await client.get(
        f"/v1/forecast/snapshots/{snapshot['id']}", params={"group_by": "region"}
    )
    assert list(only.json()["rows"]) == ["region"]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url, application_name="test-snapshots", pool_size=2)
    yield create_sessionmaker(engine)
    await engine.dispose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_the_scheduler_takes_each_due_slot_once(
    client: httpx.AsyncClient, sessions: Any, database_url: str, kafka_bootstrap: str
) -> None:
    tag = uuid4().hex[:8]
    r1, w1 = f"r1-{tag}", f"w1-{tag}"
    await post(
        client,
        team(tag, "A", "north", "2020-01-01"),
        rep(r1, f"A-{tag}", "2020-01-01"),
        created(w1, r1, "700", "2021-02-26", "2021-01-10T00:00:00Z", stage="Engaging"),
        closed(w1, "won", "2021-02-25T00:00:00Z"),
    )

    async def applied() -> bool:
        rows = mine(await rollup(client, period="2021-02", group_by="rep"), tag, null_group=False)
        return rows.get(r1, {}).get("closed_won") == "700"

    await eventually(lambda: placed(client, [r1], "2021-02-01"))
    await eventually(applied)
    settings = make_settings(
        database_url,
        kafka_bootstrap,
        snapshot_period_kinds=("month",),
        snapshot_catch_up_days=10,
        snapshot_weekday=0,
        snapshot_settle_seconds=300,
    )
    await eventually(lambda: consumer_caught_up(sessions, settings))
    step = at("2021-03-03T12:00")

    unsettled = await take_due(sessions, settings, at("2021-03-01T00:04:59"))
    assert len(unsettled) == 1, "Mon 22 Feb only: the slots of 1 Mar are not 300 s old yet"
    async with lagging(sessions, next_offset=0):
        assert await take_due(sessions, settings, step) == [], "the consumer has not caught up"
    async with lagging(sessions, incarnation="an earlier broker life"):
        assert await take_due(sessions, settings, step) == [], "an offset of another life"
    async with refusing(sessions, "2021-02", "period_end"):
        failed = REGISTRY.get_sample_value(FAILED, {"kind": "period_end"}) or 0.0
        after_failure = await take_due(sessions, settings, step)
        assert len(after_failure) == 1, "February's end fails; Mon 1 Mar (March) is taken"
        assert REGISTRY.get_sample_value(FAILED, {"kind": "period_end"}) == failed + 1
    retried = await take_due(sessions, settings, step)
    assert len(retried) == 1, "the next step takes February's end"
    assert await take_due(sessions, settings, step) == []
    assert await take_due(sessions, settings, at("2021-03-07T23:59")) == []
    unreadable = make_settings(
        database_url,
        "127.0.0.1:9",
        snapshot_period_kinds=("month",),
        snapshot_catch_up_days=10,
        snapshot_weekday=0,
    )
    assert await take_due(sessions, unreadable, at("2021-03-08T01:00")) == [], "no broker"
    both = await asyncio.gather(
        *(take_due(sessions, settings, at("2021-03-08T01:00")) for _ in range(2))
    )
    assert sorted(map(len, both)) == [0, 1], "two replicas stepping at once take Mar 8 once"

    points = (await trend(client, period="2021-02", group_by="rep"))["snapshots"]
    assert [(p["as_of"], p["kind"], p["taken_by"]) for p in points] == [
        ("2021-02-22T00:00:00Z", "weekly", "scheduler"),
        ("2021-03-01T00:00:00Z", "period_end", "scheduler"),
    ]
    weekly, end = (own(p["rows"], tag)[r1] for p in points)
    assert (weekly["best_case"], weekly["closed_won"]) == ("700", "0")
    assert (end["best_case"], end["closed_won"]) == ("0", "700")
    march = (await trend(client, period="2021-03", group_by="team"))["snapshots"]
    assert [(p["as_of"], p["kind"]) for p in march] == [
        ("2021-03-01T00:00:00Z", "weekly"),
        ("2021-03-08T00:00:00Z", "weekly"),
    ]
    ended = await trend(client, period="2021-02", group_by="rep", kind="period_end")
    assert [p["id"] for p in ended["snapshots"]] == [points[1]["id"]]
    again = await post_snapshot(client, "", {"period": "2021-02", "as_of": points[1]["as_of"]})
    assert (again.status_code, again.json()["id"]) == (200, points[1]["id"]), (
        "an instant the period has a snapshot of is not taken again, as a backfill skips it"
    )
    assert len((await trend(client, period="2021-02", group_by="rep"))["snapshots"]) == 2


@asynccontextmanager
async def lagging(sessions: Any, **stored: Any) -> AsyncIterator[None]:
    """The forecast consumer's stored offset of its busiest deal partition changed to
    `stored` while inside (a next offset it has not reached, or another broker life's),
    then restored; nothing is posted meanwhile, so the consumer writes no offset of it."""
    table = CONSUMER_TABLES.offsets
    async with sessions() as session, session.begin():
        row = (
            await session.execute(
                select(table)
                .where(table.c.group_id == GROUP_ID, table.c.topic == topics.DEAL)
                .order_by(table.c.next_offset.desc())
                .limit(1)
            )
        ).one()
        where = (
            table.c.group_id == GROUP_ID,
            table.c.topic == row.topic,
            table.c.partition == row.partition,
        )
        await session.execute(update(table).where(*where).values(**stored))
    try:
        yield
    finally:
        before = {name: getattr(row, name) for name in stored}
        async with sessions() as session, session.begin():
            await session.execute(update(table).where(*where).values(**before))


@asynccontextmanager
async def refusing(sessions: Any, period: str, kind: str) -> AsyncIterator[None]:
    """Postgres refuses to store a snapshot of `period` and `kind` while inside: a slot that
    fails, on the real database."""
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "CREATE FUNCTION forecast.test_refuse_snapshot() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.period = '{period}' AND NEW.kind = '{kind}' THEN "
                "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER test_refuse_snapshot BEFORE INSERT ON forecast.snapshots "
                "FOR EACH ROW EXECUTE FUNCTION forecast.test_refuse_snapshot()"
            )
        )
    try:
        yield
    finally:
        async with sessions() as session, session.begin():
            await session.execute(text("DROP TRIGGER test_refuse_snapshot ON forecast.snapshots"))
            await session.execute(text("DROP FUNCTION forecast.test_refuse_snapshot()"))


async def test_bad_input(client: httpx.AsyncClient) -> None:
    async def refused(path: str, body: dict[str, Any]) -> list[str]:
        r = await post_snapshot(client, path, body)
        assert r.status_code == 422, r.text
        return [e["location"] for e in r.json()["errors"]]

    assert await refused("", {"period": "2026-Q5"}) == ["body.period"]
    assert await refused("", {"period": "2026-Q4", "as_of": "2999-01-01T00:00:00Z"}) == [
        "body.as_of"
    ]
    week = {"period": "2026-Q4", "every": "week"}
    assert await refused("/backfill", {**week, "from": "2026-02-01", "to": "2026-01-01"}) == [
        "body.from"
    ]
    assert await refused("/backfill", {**week, "from": "2026-01-01", "to": "2999-01-01"}) == [
        "body.to"
    ]
    days = {"period": "2026-Q4", "every": "day", "from": "2024-01-01", "to": "2025-12-31"}
    assert await refused("/backfill", days) == ["body.from"]
    ages = {**days, "from": "0001-01-01"}
    assert await refused("/backfill", ages) == ["body.from"], "counted, not listed"
    r = await client.post("/v1/forecast/snapshots", json={"period": "2026-Q4"})
    assert r.status_code == 201, "the admin key may write too"
    reader = {"Authorization": "Bearer test-reader-key"}
    r = await client.post("/v1/forecast/snapshots", json={"period": "2026-Q4"}, headers=reader)
    assert r.status_code == 403, r.text

    r = await client.get("/v1/forecast/snapshots", params={"period": "26-Q4", "group_by": "rep"})
    assert r.status_code == 422, r.text
    assert [e["location"] for e in r.json()["errors"]] == ["query.period"]
    assert (await client.get("/v1/forecast/snapshots/999999999")).status_code == 404

    empty = await post_snapshot(client, "", {"period": "2097-Q1", "as_of": "1971-01-01T00:00:00Z"})
    assert empty.status_code == 201, empty.text
    assert empty.json()["rows"] == {"rep": [], "team": [], "manager": [], "region": []}
    assert empty.json()["as_of"] == "1971-01-01T00:00:00Z"


async def test_the_cli_backfills_through_the_api(client: httpx.AsyncClient, stack_url: str) -> None:
    args = ("forecast", "snapshots", "backfill", "--period", "2096-Q1")
    code, _, output = await salesops(stack_url, *args, "--from", "2026-11-01", "--to", "2026-11-16")
    assert code == 0, output
    assert "2096-Q1: took 3 snapshots; 0 instants already had one" in output
    code, _, output = await salesops(
        stack_url, *args, "--from", "2026-11-01", "--to", "2026-11-30", "--every", "day"
    )
    assert code == 0, output
    assert "2096-Q1: took 27 snapshots; 3 instants already had one" in output
    points = (await trend(client, period="2096-Q1", group_by="region"))["snapshots"]
    assert len(points) == 30
    code, _, output = await salesops(stack_url, *args, "--from", "2026-11-02", "--to", "2026-11-01")
    assert code == 1
    assert "The backfill was refused" in output
    assert "body.from" in output


async def test_the_trend_is_paged_by_whole_snapshots(client: httpx.AsyncClient) -> None:
    days = {"period": "2095-Q1", "every": "day", "from": "2026-03-02", "to": "2026-03-06"}
    r = await post_snapshot(client, "/backfill", days)
    assert r.status_code == 201, r.text
    assert len(r.json()["taken"]) == 5
    query = {"period": "2095-Q1", "group_by": "team"}
    whole = await trend(client, **query)
    assert [p["as_of"][:10] for p in whole["snapshots"]] == [f"2026-03-0{d}" for d in range(2, 7)]
    assert whole["next_cursor"] is None
    pages: list[list[Any]] = []
    cursor: str | None = None
    while cursor is not None or not pages:
        page = await trend(client, **query, limit="2", **({"cursor": cursor} if cursor else {}))
        pages.append(page["snapshots"])
        cursor = page["next_cursor"]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [p for page in pages for p in page] == whole["snapshots"]

    csv_page = {**query, "limit": "3", "format": "csv"}
    first = await client.get("/v1/forecast/snapshots", params=csv_page)
    assert first.status_code == 200, first.text
    after = first.headers["X-Next-Cursor"]
    rest = await client.get("/v1/forecast/snapshots", params={**csv_page, "cursor": after})
    assert rest.status_code == 200, rest.text
    assert "X-Next-Cursor" not in rest.headers, "two pages of three hold the five"

    forged = await client.get("/v1/forecast/snapshots", params={**query, "cursor": "bm90LWpzb24"})
    assert forged.status_code == 400, forged.text
    too_many = await client.get("/v1/forecast/snapshots", params={**query, "limit": 1001})
    assert [e["location"] for e in too_many.json()["errors"]] == ["query.limit"]


async def test_a_backfill_keeps_the_instants_taken_before_one_that_fails(
    client: httpx.AsyncClient, sessions: Any
) -> None:
    """Each instant of a backfill is its own transaction: when the third of five fails, the
    first two stay taken, and asking again takes the other three."""
    days = {"period": "2094-Q1", "every": "day", "from": "2026-03-02", "to": "2026-03-06"}
    refuse = (
        "CREATE FUNCTION forecast.test_refuse_instant() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF NEW.period = '2094-Q1' AND NEW.as_of = '2026-03-04T00:00:00Z' THEN "
        "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER test_refuse_instant BEFORE INSERT ON forecast.snapshots "
        "FOR EACH ROW EXECUTE FUNCTION forecast.test_refuse_instant()",
    )
    async with sessions() as session, session.begin():
        for statement in refuse:
            await session.execute(text(statement))
    try:
        failed = await post_snapshot(client, "/backfill", days)
        assert failed.status_code >= 500, failed.text
    finally:
        async with sessions() as session, session.begin():
            await session.execute(text("DROP TRIGGER test_refuse_instant ON forecast.snapshots"))
            await session.execute(text("DROP FUNCTION forecast.test_refuse_instant()"))
    kept = (await trend(client, period="2094-Q1", group_by="team"))["snapshots"]
    assert [p["as_of"][:10] for p in kept] == ["2026-03-02", "2026-03-03"]
    again = await post_snapshot(client, "/backfill", days)
    assert again.status_code == 201, again.text
    assert [t["as_of"][:10] for t in again.json()["taken"]] == [
        "2026-03-04",
        "2026-03-05",
        "2026-03-06",
    ]
    assert [a[:10] for a in again.json()["already_taken"]] == ["2026-03-02", "2026-03-03"]
