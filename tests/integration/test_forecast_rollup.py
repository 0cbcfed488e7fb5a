"""GET /v1/forecast/rollup against the real stack: a hand-made scenario with every number
asserted, `as_of` reproducing an earlier live answer exactly, the real dataset's closed-won
per manager and region against the CSV, and bad input.

Other tests share the stack, so each test names its reps, teams, managers and regions with
a unique tag and uses the made-up currency XTS (ISO 4217's code for testing), and reads
only its own rows."""

from __future__ import annotations

import asyncio
import csv
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml

from services.datasets.generator import DealPlan, history_events
from tests.conftest import FORECASTER_KEY
from tests.support.events import CREATED, UPDATED, event, expected_deals
from tests.support.maven_expected import agent_id, pipeline_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "forecast.example.yaml"
REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v2"
QUOTA = "com.salesops.quota.set.v1"
CURRENCY = "XTS"
GROUPINGS = ("rep", "team", "manager", "region")
D = Decimal


@pytest.fixture(autouse=True)
async def _example_config(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The example configuration for the test, then whatever was there before."""
    before = (await client.get("/v1/forecast/config")).json()
    put = await client.put("/v1/forecast/config", json=yaml.safe_load(EXAMPLE.read_text()))
    assert put.status_code == 200, put.text
    yield
    assert (await client.put("/v1/forecast/config", json=before)).status_code == 200


async def post(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def rollup(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    r = await client.get("/v1/forecast/rollup", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def mine(
    answer: dict[str, Any], tag: str, *, null_group: bool = True
) -> dict[str | None, dict[str, Any]]:
    """This test's rows; the null group, when asked for, is shared with other tests."""
    return {
        row["group"]: row
        for row in answer["rows"]
        if row["currency"] == CURRENCY
        and (tag in (row["group"] or "") or (null_group and row["group"] is None))
    }


def team(tag: str, name: str, region: str, effective: str = "2025-01-01") -> dict[str, Any]:
    data = {
        "team_id": f"{name}-{tag}",
        "name": name,
        "manager_id": f"m{name}-{tag}",
        "manager_name": name,
        "region": f"{region}-{tag}",
        "effective_from": effective,
    }
    return event(TEAM, data, time=f"{effective}T00:00:00Z")


def rep(rep_id: str, team_id: str, effective: str, time: str | None = None) -> dict[str, Any]:
    data = {"rep_id": rep_id, "name": rep_id, "team_id": team_id, "effective_from": effective}
    return event(REP, data, time=time or f"{effective}T00:00:00Z")


def deal(deal_id: str, owner: str, stage: str | None, amount: str, close: str, **more: str) -> Any:
    """A deal created with `stage`; with None, a deal without one, which the roll-ups list
    as unmapped (a stage the configuration does not know is dead-lettered instead)."""
    data = {
        "deal_id": deal_id,
        "name": deal_id,
        "owner_id": owner,
        **({"stage": stage} if stage is not None else {}),
        "amount": amount,
        "currency": CURRENCY,
        "close_date": close,
        **more,
    }
    return event(CREATED, data, time="2025-10-01T00:00:00Z")


def quota(quota_id: str, start: str, end: str, amount: str, **owner: str) -> dict[str, Any]:
    data = {
        "quota_id": quota_id,
        **owner,
        "period_start": start,
        "period_end": end,
        "amount": amount,
        "currency": CURRENCY,
    }
    return event(QUOTA, data, time="2025-01-01T00:00:00Z")


async def forecaster_post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {FORECASTER_KEY}"}
    r = await client.post(path, json=body, headers=headers)
    assert r.status_code == 201, r.text


def numbers(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


FIGURES = (
    "closed_won",
    "commit",
    "best_case",
    "pipeline",
    "omitted",
    "commit_plus_closed",
    "best_case_plus_commit_plus_closed",
    "weighted",
    "open_count",
    "unmapped",
    "unmapped_count",
    "quota",
    "attainment",
    "gap_to_quota",
    "coverage",
)


async def test_a_hand_made_quarter_adds_up(client: httpx.AsyncClient) -> None:
    tag = uuid4().hex[:8]
    r1, r2, r3, ghost = (f"{n}-{tag}" for n in ("r1", "r2", "r3", "ghost"))
    a, b = f"A-{tag}", f"B-{tag}"
    await post(
        client,
        team(tag, "A", "north"),
        team(tag, "B", "south"),
        rep(r1, a, "2025-01-01"),
        rep(r2, a, "2025-01-01"),
        rep(r3, b, "2025-01-01"),
        rep(r2, b, "2099-11-15", time="2026-11-01T00:00:00Z"),
        quota(f"q1-{tag}", "2099-10-01", "2099-12-31", "1000", rep_id=r1),
        quota(f"qy-{tag}", "2099-01-01", "2099-12-31", "99999", rep_id=r1),
        quota(f"qa-{tag}", "2099-10-01", "2099-12-31", "5000", team_id=a),
        quota(f"qb-{tag}", "2099-10-01", "2099-12-31", "3000", team_id=b),
    )
    await post(
        client,
        deal(f"d1-{tag}", r1, "Engaging", "1000", "2099-11-20"),
        deal(f"d2-{tag}", r1, "Prospecting", "200", "2099-12-01", forecast_category="commit"),
        deal(f"d3-{tag}", r1, "Won", "300", "2099-10-15", status="won"),
        deal(f"d4-{tag}", r2, "Lost", "999", "2099-10-20", status="lost"),
        deal(f"d5-{tag}", r2, "Engaging", "400", "2099-12-31"),
        deal(f"d6-{tag}", r3, None, "50", "2099-11-01"),
        deal(f"d7-{tag}", r3, "Prospecting", "100", "2099-11-02", forecast_category="omitted"),
        deal(f"d8-{tag}", ghost, "Prospecting", "70", "2099-11-03"),
        deal(f"d9-{tag}", r1, "Engaging", "5000", "2100-01-15"),
    )
    await forecaster_post(
        client,
        "/v1/forecast/calls",
        {
            "rep_id": r1,
            "period": "2099-Q4",
            "commit": "250",
            "best_case": "1500",
            "currency": CURRENCY,
            "author": "R1",
        },
    )
    await forecaster_post(
        client,
        "/v1/forecast/adjustments",
        {
            "period": "2099-Q4",
            "target": {"team_id": a},
            "category": "commit",
            "amount": "600",
            "currency": CURRENCY,
            "note": "legal is slow",
            "author": "Mia",
        },
    )

    async def settled() -> dict[str | None, dict[str, Any]] | None:
        rows = mine(await rollup(client, period="2099-Q4", group_by="rep"), tag)
        counted = sum(r["open_count"] + r["unmapped_count"] for r in rows.values())
        won = rows.get(r1, {}).get("closed_won")
        return rows if counted == 6 and won == "300" and rows.get(r2) else None

    await eventually(lambda: _reference_applied(client, [r1, r2, r3], r1, "2026-06-01"))
    reps = await eventually(settled)
    assert set(reps) == {r1, r2, r3, ghost}
    assert numbers(reps[r1], *FIGURES) == (
        "300", "200", "1000", "0", "0", "500", "1500", "520.00", 2, "0", 0,
        "1000", "0.3000", "700", "0.5833",
    )  # fmt: skip
    assert numbers(reps[r1], "call_commit", "call_best_case", "call_pipeline", "call_author") == (
        "250",
        "1500",
        None,
        "R1",
    )
    assert reps[r1]["adjustment_commit"] is None, "the adjustment is the team's"
    assert numbers(reps[r2], *FIGURES) == (
        "0", "0", "400", "0", "0", "0", "400", "200.00", 1, "0", 0, None, None, None, None,
    )  # fmt: skip
    assert numbers(reps[r3], *FIGURES) == (
        "0", "0", "0", "0", "100", "0", "0", "10.00", 1, "50", 1, None, None, None, None,
    )  # fmt: skip
    assert numbers(reps[ghost], "pipeline", "weighted", "open_count") == ("70", "7.00", 1)

    after_move = "2099-12-01T00:00:00Z"
    teams = mine(await rollup(client, period="2099-Q4", group_by="team", as_of=after_move), tag)
    assert numbers(teams[a], *FIGURES) == (
        "300", "200", "1000", "0", "0", "500", "1500", "520.00", 2, "0", 0,
        "5000", "0.0600", "4700", "3.9167",
    )  # fmt: skip
    assert teams[a]["adjustment_commit"] == "600"
    assert teams[a]["call_commit"] is None, "calls are reps'"
    assert numbers(teams[b], *FIGURES) == (
        "0", "0", "400", "0", "100", "0", "400", "210.00", 2, "50", 1,
        "3000", "0.0000", "3000", "7.5000",
    )  # fmt: skip
    assert D(teams[None]["pipeline"]) >= D(70), "the ghost's deal is in the null group"

    for group_by, a_name, b_name in (
        ("manager", f"mA-{tag}", f"mB-{tag}"),
        ("region", f"north-{tag}", f"south-{tag}"),
    ):
        answer = await rollup(client, period="2099-Q4", group_by=group_by, as_of=after_move)
        rows = mine(answer, tag)
        assert numbers(rows[a_name], *FIGURES) == numbers(teams[a], *FIGURES), group_by
        assert numbers(rows[b_name], *FIGURES) == numbers(teams[b], *FIGURES), group_by
        assert rows[a_name]["adjustment_commit"] is None

    live = mine(await rollup(client, period="2099-Q4", group_by="team"), tag)
    assert numbers(live[a], *FIGURES) == (
        "300", "200", "1400", "0", "0", "500", "1900", "720.00", 3, "0", 0,
        "5000", "0.0600", "4700", "2.9375",
    ), "r2 sells for A until the move takes effect on 2099-11-15"  # fmt: skip
    assert numbers(live[b], *FIGURES) == (
        "0", "0", "0", "0", "100", "0", "0", "10.00", 1, "50", 1,
        "3000", "0.0000", "3000", None,
    ), "no open pipeline: coverage is undefined"  # fmt: skip
    assert live[a]["adjustment_commit"] == "600"

    earlier = mine(
        await rollup(client, period="2099-Q4", group_by="rep", as_of="2026-06-01T00:00:00Z"),
        tag,
    )
    assert numbers(earlier[r1], *FIGURES) == numbers(reps[r1], *FIGURES), "deals of 2025"
    assert earlier[r1]["call_commit"] is None, "the call was recorded after that instant"

    text = (
        await client.get(
            "/v1/forecast/rollup", params={"period": "2099-Q4", "group_by": "rep", "format": "csv"}
        )
    ).text
    table = {r["group"]: r for r in csv.DictReader(text.splitlines())}
    assert list(table[r1])[:17] == ["group", "currency", *FIGURES]
    assert (table[r1]["closed_won"], table[r1]["coverage"], table[r1]["call_commit"]) == (
        "300",
        "0.5833",
        "250",
    )


async def _reference_applied(
    client: httpx.AsyncClient, reps: list[str], quota_rep: str, day: str
) -> bool:
    """The reps are in their teams on `day` and the rep's quota is stored (reference events
    travel on their own topic, so they may lag the deals)."""
    r = await client.get("/v1/forecast/hierarchy", params={"as_of": day})
    teams = {row["rep_id"]: row["team_name"] for row in r.json()["items"]}
    quotas = await client.get("/v1/forecast/quotas", params={"rep_id": quota_rep})
    return all(teams.get(rep) for rep in reps) and bool(quotas.json()["items"])


async def test_as_of_an_earlier_instant_equals_the_live_answer_then(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid4().hex[:8]
    r1, r2 = f"r1-{tag}", f"r2-{tag}"
    a, b = f"A-{tag}", f"B-{tag}"
    await post(
        client,
        team(tag, "A", "north"),
        team(tag, "B", "south"),
        rep(r1, a, "2026-01-01"),
        rep(r2, b, "2026-01-01"),
        quota(f"q1-{tag}", "2099-01-01", "2099-03-31", "800", rep_id=r1),
        *(
            deal(f"d{i}-{tag}", (r1, r2)[i % 2], stage, f"{100 * (i + 1)}", f"2099-0{1 + i % 3}-10")
            for i, stage in enumerate(("Engaging", "Prospecting", "Engaging", None, "Won"))
        ),
    )
    await forecaster_post(
        client,
        "/v1/forecast/calls",
        {"rep_id": r1, "period": "2099-Q1", "commit": "10", "currency": CURRENCY, "author": "R1"},
    )

    async def first_batch() -> dict[str | None, dict[str, Any]] | None:
        rows = mine(await rollup(client, period="2099-Q1", group_by="rep"), tag, null_group=False)
        counted = sum(r["open_count"] + r["unmapped_count"] for r in rows.values())
        return rows if counted == 4 and rows.get(r1, {}).get("closed_won") == "500" else None

    await eventually(lambda: _reference_applied(client, [r1, r2], r1, "2026-11-01"))
    await eventually(first_batch)
    live = {
        g: mine(await rollup(client, period="2099-Q1", group_by=g), tag, null_group=False)
        for g in GROUPINGS
    }
    instant = datetime.now(UTC)
    await asyncio.sleep(1.1)
    later = datetime.now(UTC)
    tomorrow = (instant + timedelta(days=1)).date().isoformat()

    def change(deal_id: str, **fields: str) -> dict[str, Any]:
        return event(UPDATED, {"deal_id": f"{deal_id}-{tag}", **fields}, time=later)

    await post(
        client,
        change("d0", close_date="2099-05-01"),
        change("d1", amount="12345"),
        change("d2", stage="Won", status="won"),
        change("d3", owner_id=r1),
        event(
            CREATED,
            {
                "deal_id": f"new-{tag}",
                "owner_id": r2,
                "stage": "Engaging",
                "amount": "777",
                "currency": CURRENCY,
                "close_date": "2099-02-02",
            },
            time=later,
        ),
        rep(r1, b, tomorrow, time=later.isoformat().replace("+00:00", "Z")),
    )
    await forecaster_post(
        client,
        "/v1/forecast/calls",
        {"rep_id": r1, "period": "2099-Q1", "commit": "99", "currency": CURRENCY, "author": "R1"},
    )

    async def second_batch() -> bool:
        rows = mine(await rollup(client, period="2099-Q1", group_by="rep"), tag, null_group=False)
        return rows.get(r2, {}).get("best_case") == "777" and rows[r1]["call_commit"] == "99"

    await eventually(second_batch)
    assert (
        mine(await rollup(client, period="2099-Q1", group_by="rep"), tag, null_group=False)
        != live["rep"]
    )
    at = instant.isoformat().replace("+00:00", "Z")
    for group_by in GROUPINGS:
        then = await rollup(client, period="2099-Q1", group_by=group_by, as_of=at)
        assert mine(then, tag, null_group=False) == live[group_by], group_by


async def _deals_are(
    client: httpx.AsyncClient, want: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """Every deal of `want` reads back with the wanted amount, owner, close date, category
    and status: the worker has applied everything posted so far."""
    fields = ("owner_id", "close_date", "forecast_category", "status")
    for deal_id, values in want.items():
        r = await client.get(f"/v1/deals/{deal_id}")
        if r.status_code != 200:
            return None
        got = r.json()
        if D(got["amount"]) != D(values["amount"]) or any(got[f] != values.get(f) for f in fields):
            return None
    return want


@pytest.mark.timeout(300)
async def test_as_of_equals_live_over_a_generated_history(client: httpx.AsyncClient) -> None:
    """Seeded pushes, pull-ins, amount and category changes and reassignments
    (`services/datasets/generator.py`): the roll-up as of an instant, asked once everything
    later has arrived, equals the live roll-up taken when only the earlier part had."""
    tag = uuid4().hex[:8]
    reps = [f"g{n}-{tag}" for n in range(4)]
    await post(
        client,
        team(tag, "A", "north"),
        team(tag, "B", "south"),
        *(rep(r, (f"A-{tag}", f"B-{tag}")[n % 2], "2026-01-01") for n, r in enumerate(reps)),
        quota(f"qg-{tag}", "2026-01-01", "2026-12-31", "50000", rep_id=reps[0]),
    )
    rng = random.Random(8)
    plans = [
        DealPlan(
            deal_id=f"g{n}-{tag}",
            owner_id=rng.choice(reps),
            created=datetime(2026, 1, 5, tzinfo=UTC),
            amount=D(rng.randint(10, 300) * 100),
            end=datetime(2026, rng.randint(4, 9), rng.randint(1, 28), tzinfo=UTC),
            outcome=rng.choice((None, "won", "lost")),
        )
        for n in range(40)
    ]
    created = [
        event(
            CREATED,
            {
                "deal_id": p.deal_id,
                "owner_id": p.owner_id,
                "stage": "Engaging",
                "amount": str(p.amount),
                "currency": CURRENCY,
                "close_date": p.end.date().isoformat(),
            },
            time=p.created,
        )
        for p in plans
    ]
    closed = [
        event(UPDATED, {"deal_id": p.deal_id, "stage": p.outcome.title()}, time=p.end, sequence=1)
        for p in plans
        if p.outcome is not None
    ]
    history = list(history_events(plans, seed=8, reps=reps, source="test://suite"))
    everything = created + closed + history
    instant = datetime(2026, 5, 15, tzinfo=UTC)

    def happened(ev: dict[str, Any]) -> bool:
        return datetime.fromisoformat(ev["time"].replace("Z", "+00:00")) <= instant

    before = [ev for ev in everything if happened(ev)]
    assert len(before) < len(everything), "some of the history comes after the instant"
    assert any(ev["type"] == UPDATED for ev in before), "and some before it"
    await post(client, *before)
    await eventually(lambda: _reference_applied(client, reps, reps[0], "2026-05-15"))
    await eventually(lambda: _deals_are(client, expected_deals(before)), within=120)
    live = {
        g: mine(await rollup(client, period="FY2026", group_by=g), tag, null_group=False)
        for g in GROUPINGS
    }
    assert live["rep"], "the deals are in the roll-up"

    await post(client, *(ev for ev in everything if not happened(ev)))
    await eventually(lambda: _deals_are(client, expected_deals(everything)), within=120)
    assert (
        mine(await rollup(client, period="FY2026", group_by="rep"), tag, null_group=False)
        != live["rep"]
    )
    for group_by in GROUPINGS:
        then = await rollup(
            client, period="FY2026", group_by=group_by, as_of="2026-05-15T00:00:00Z"
        )
        assert mine(then, tag, null_group=False) == live[group_by], group_by


def _expected_closed_won(directory: Path, start: date, end: date) -> dict[str, dict[str, Decimal]]:
    with (directory / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        teams = {r["sales_agent"]: r for r in csv.DictReader(f)}
    totals: dict[str, dict[str, Decimal]] = {"manager": defaultdict(D), "region": defaultdict(D)}
    for row in pipeline_rows(directory):
        if row.stage == "Won" and row.close_date and start <= row.close_date < end:
            assert row.close_value is not None
            totals["manager"][agent_id(teams[row.agent]["manager"])] += row.close_value
            totals["region"][teams[row.agent]["regional_office"]] += row.close_value
    return totals


@pytest.mark.timeout(900)
async def test_the_real_dataset_closed_won_per_manager_and_region(
    client: httpx.AsyncClient, dataset_dir: Path, dataset_first_load: tuple[int, str]
) -> None:
    code, output = dataset_first_load
    assert code == 0, output
    for label, start, end in (
        ("2017-Q2", date(2017, 4, 1), date(2017, 7, 1)),
        ("2017-08", date(2017, 8, 1), date(2017, 9, 1)),
    ):
        want = _expected_closed_won(dataset_dir, start, end)
        for group_by in ("manager", "region"):

            async def agrees(
                group_by: str = group_by, label: str = label, expect: Any = want
            ) -> dict[str, Decimal] | None:
                answer = await rollup(client, period=label, group_by=group_by)
                got = {
                    r["group"]: D(r["closed_won"])
                    for r in answer["rows"]
                    if r["currency"] == "USD" and r["group"] in expect[group_by]
                }
                return got if got == dict(expect[group_by]) else None

            assert await eventually(agrees, within=600, interval=3)


async def test_bad_input(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/forecast/rollup", params={"period": "2026-Q5", "group_by": "rep"})
    assert r.status_code == 422, r.text
    assert [e["location"] for e in r.json()["errors"]] == ["query.period"]
    assert "2026-Q5" in r.json()["errors"][0]["message"]
    r = await client.get("/v1/forecast/rollup", params={"period": "2026-Q4", "group_by": "boss"})
    assert r.status_code == 422, r.text
    assert "group_by" in r.text
    early = await rollup(client, period="2026-Q4", group_by="team", as_of="1971-01-01T00:00:00Z")
    assert early == {
        "period": {"label": "2026-Q4", "start": "2026-10-01", "end": "2027-01-01"},
        "group_by": "team",
        "as_of": "1971-01-01T00:00:00Z",
        "rows": [],
    }
