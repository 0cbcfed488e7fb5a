"""Pipeline metrics through the API: the real Maven CRM sample against figures this test
computes from the CSV itself, and a hand-made pipeline for stage conversion and days in
stage, where every time is known."""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dataset import load_totals
from tests.support.events import CREATED, UPDATED, event
from tests.support.maven_expected import PipelineRow, agent_id, pipeline_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

WHOLE = (date(2016, 10, 1), date(2017, 12, 31))
RANGES = (WHOLE, (date(2017, 4, 1), date(2017, 6, 30)), (date(2017, 3, 15), date(2017, 5, 10)))
RATIO = Decimal("0.0001")
CENTS = Decimal("0.01")


async def metrics(
    client: httpx.AsyncClient, start: date, end: date, group_by: str | None = None
) -> list[dict[str, Any]]:
    params = {"from": start.isoformat(), "to": end.isoformat()}
    if group_by:
        params["group_by"] = group_by
    r = await client.get("/v1/forecast/metrics", params=params)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows


def _rate(won: int, closed: int) -> Decimal:
    return (Decimal(won) / Decimal(closed)).quantize(RATIO, rounding=ROUND_HALF_EVEN)


def _figures(rows: Iterable[PipelineRow]) -> dict[str, Any]:
    """The expected outcome figures of the closed rows, by the documented rules."""
    closed = [r for r in rows if r.stage in ("Won", "Lost")]
    won = [r for r in closed if r.stage == "Won"]
    won_amount = sum((r.close_value or Decimal(0) for r in won), Decimal(0))
    cycles = [(r.close_date - r.engage_date).days for r in closed if r.close_date and r.engage_date]
    return {
        "won_count": len(won),
        "lost_count": len(closed) - len(won),
        "win_rate": _rate(len(won), len(closed)),
        "won_amount": won_amount,
        "avg_won_amount": (won_amount / len(won)).quantize(CENTS, rounding=ROUND_HALF_EVEN),
        "cycle_days_median": Decimal(statistics.median(cycles)).quantize(CENTS),
        "cycle_days_mean": (Decimal(sum(cycles)) / len(cycles)).quantize(
            CENTS, rounding=ROUND_HALF_EVEN
        ),
    }


def _actual(row: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {n: row[n] if isinstance(row[n], int) else Decimal(row[n]) for n in names}


def _in_range(rows: list[PipelineRow], start: date, end: date) -> list[PipelineRow]:
    return [r for r in rows if r.close_date is not None and start <= r.close_date <= end]


def _teams(directory: Path) -> dict[str, tuple[str, str]]:
    """{agent name: (manager id, region)}: the manager id is the manager's name as a slug."""
    with (directory / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        return {
            t["sales_agent"]: (agent_id(t["manager"]), t["regional_office"])
            for t in csv.DictReader(f)
        }


@pytest.mark.timeout(1200)
async def test_the_real_dataset_gives_the_win_rates_and_cycles_of_its_csv(
    client: httpx.AsyncClient, dataset_dir: Path, dataset_first_load: tuple[int, str]
) -> None:
    rows = pipeline_rows(dataset_dir)
    closed = [r for r in rows if r.stage in ("Won", "Lost")]
    assert (len(closed), sum(r.stage == "Won" for r in closed)) == (6711, 4238)
    code, output = dataset_first_load
    assert code == 0, output
    assert load_totals(output)[2] == 0, output

    async def folded() -> list[dict[str, Any]] | None:
        answer = await metrics(client, *WHOLE)
        done = answer and answer[0]["won_count"] + answer[0]["lost_count"] == len(closed)
        return answer if done else None

    await eventually(folded, within=600, interval=3)
    teams = _teams(dataset_dir)
    for start, end in RANGES:
        chosen = _in_range(rows, start, end)
        want = _figures(chosen)
        (overall,) = await metrics(client, start, end)
        assert overall["group"] is None
        assert overall["currency"] == "USD"
        assert _actual(overall, want) == want, (start, end)
        for group_by, key in (("manager", 0), ("region", 1)):
            groups: dict[str, list[PipelineRow]] = defaultdict(list)
            for r in chosen:
                groups[teams[r.agent][key]].append(r)
            answer = {row["group"]: row for row in await metrics(client, start, end, group_by)}
            for group, group_rows in groups.items():
                expected = _figures(group_rows)
                assert _actual(answer[group], expected) == expected, (group_by, group)
    assert (await metrics(client, date(2001, 1, 1), date(2001, 12, 31))) == []


def _stage(name: str, order: int, status: str) -> dict[str, Any]:
    category = {"open": "pipeline", "won": "closed", "lost": "omitted"}[status]
    return {
        "name": name,
        "order": order,
        "probability": "100" if status == "won" else "0" if status == "lost" else "50",
        "forecast_category": category,
        "status": status,
        "required_fields": [],
    }


def _path(deal_id: str, owner: str, amount: str, *moves: tuple[str, str]) -> list[dict[str, Any]]:
    """A deal created in the first stage of `moves` and moved through the rest, each
    (stage, day in January 2003) at midnight UTC; a last Won or Lost stage closes it."""
    (first, day), rest = moves[0], moves[1:]
    at = f"2003-01-{day}T00:00:00Z"
    events = [
        event(
            CREATED,
            {
                "deal_id": deal_id,
                "owner_id": owner,
                "amount": amount,
                "currency": "EUR",
                "stage": first,
                "pipeline": "Metrics",
                "created_at": at,
            },
            time=at,
        )
    ]
    for stage, day in rest:
        data: dict[str, Any] = {"deal_id": deal_id, "stage": stage}
        if stage in ("Won", "Lost"):
            data["close_date"] = f"2003-01-{day}"
        events.append(event(UPDATED, data, time=f"2003-01-{day}T00:00:00Z"))
    return events


@pytest.mark.usefixtures("restore_forecast_config")
async def test_stage_conversion_and_days_in_stage_of_a_known_pipeline(
    client: httpx.AsyncClient,
) -> None:
    config = {
        "pipelines": [
            {
                "name": "Metrics",
                "stages": [
                    _stage("Qualify", 1, "open"),
                    _stage("Propose", 2, "open"),
                    _stage("Negotiate", 3, "open"),
                    _stage("Won", 4, "won"),
                    _stage("Lost", 5, "lost"),
                ],
            }
        ],
        "default_pipeline": "Metrics",
    }
    assert (await client.put("/v1/forecast/config", json=config)).status_code == 200
    tag = uuid.uuid4().hex[:8]
    rep = f"rep-{tag}"
    events = [
        *_path(
            f"m1-{tag}",
            rep,
            "100",
            ("Qualify", "01"),
            ("Propose", "03"),
            ("Negotiate", "07"),
            ("Won", "08"),
        ),
        *_path(f"m2-{tag}", rep, "50", ("Qualify", "02"), ("Propose", "06"), ("Lost", "09")),
        *_path(f"m3-{tag}", rep, "30", ("Qualify", "01"), ("Lost", "02")),
        *_path(f"m4-{tag}", rep, "70", ("Qualify", "05")),
    ]
    # The win is booked at 120: created pipeline still counts the 100 it was created at.
    events.append(
        event(UPDATED, {"deal_id": f"m1-{tag}", "amount": "120"}, time="2003-01-08T00:00:01Z")
    )
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    start, end = date(2003, 1, 1), date(2003, 1, 31)

    async def mine() -> dict[str, Any] | None:
        rows = await metrics(client, start, end, "rep")
        row = next((row for row in rows if row["group"] == rep), None)
        if row is None:
            return None
        settled = row["won_count"] + row["lost_count"] == 3 and row["created_count"] == 4
        return row if settled and row["won_amount"] == "120" else None

    row = await eventually(mine, within=60)
    assert {k: v for k, v in row.items() if k != "stages"} == {
        "group": rep,
        "currency": "EUR",
        "won_count": 1,
        "lost_count": 2,
        "win_rate": "0.3333",
        "win_rate_value": "0.6000",  # 120 / (120 + 50 + 30)
        "won_amount": "120",
        "avg_won_amount": "120.00",
        "cycle_days_median": "7.00",  # cycles 7, 7 and 1 days
        "cycle_days_mean": "5.00",
        "velocity": "8.00",  # 1 open x 120 average won x 1/3 win rate / 5 days
        "open_count": 1,
        "created_count": 4,
        "created_amount": "250",
    }
    # Lost ranks after Negotiate, so a deal that was lost left the stages before it: it
    # advanced (figures.py), and the loss shows in the win rate, not in the conversion.
    assert row["stages"] == [
        {
            "stage": "Qualify",
            "entered": 3,
            "advanced": 3,
            "conversion": "1.0000",
            "median_days": "2.00",
        },
        {
            "stage": "Propose",
            "entered": 2,
            "advanced": 2,
            "conversion": "1.0000",
            "median_days": "3.50",
        },
        {
            "stage": "Negotiate",
            "entered": 1,
            "advanced": 1,
            "conversion": "1.0000",
            "median_days": "1.00",
        },
        {"stage": "Won", "entered": 1, "advanced": 0, "conversion": "0.0000", "median_days": None},
        {"stage": "Lost", "entered": 2, "advanced": 0, "conversion": "0.0000", "median_days": None},
    ]
    params = {"from": "2003-01-01", "to": "2003-01-31", "group_by": "rep", "format": "csv"}
    table = await client.get("/v1/forecast/metrics/stages", params=params)
    assert table.status_code == 200
    stage_rows = [s for s in csv.DictReader(io.StringIO(table.text)) if s["group"] == rep]
    assert [(s["stage"], s["conversion"], s["median_days"]) for s in stage_rows] == [
        ("Qualify", "1.0000", "2.00"),
        ("Propose", "1.0000", "3.50"),
        ("Negotiate", "1.0000", "1.00"),
        ("Won", "0.0000", ""),
        ("Lost", "0.0000", ""),
    ]
    flat = await client.get("/v1/forecast/metrics", params=params)
    reader = csv.DictReader(io.StringIO(flat.text))
    assert reader.fieldnames is not None
    assert "stages" not in reader.fieldnames
    (mine_csv,) = [c for c in reader if c["group"] == rep]
    assert (mine_csv["win_rate"], mine_csv["velocity"], mine_csv["created_amount"]) == (
        "0.3333",
        "8.00",
        "250",
    )


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"from": "2017-13-01", "to": "2017-12-31"}, "from"),
        ({"from": "2017-01-01", "to": "soon"}, "to"),
        ({"from": "2017-01-01", "to": "2017-12-31", "group_by": "planet"}, "group_by"),
    ],
)
async def test_a_bad_parameter_is_refused_by_name(
    client: httpx.AsyncClient, params: dict[str, str], names: str
) -> None:
    r = await client.get("/v1/forecast/metrics", params=params)
    assert r.status_code == 422
    assert names in r.text


async def test_from_after_to_is_refused(client: httpx.AsyncClient) -> None:
    for path in ("/v1/forecast/metrics", "/v1/forecast/metrics/stages"):
        r = await client.get(path, params={"from": "2017-02-01", "to": "2017-01-31"})
        assert r.status_code == 422
        assert "after" in r.json()["detail"]


async def test_metrics_need_a_forecast_reader(stack_url: str) -> None:
    async with httpx.AsyncClient(base_url=stack_url) as anonymous:
        r = await anonymous.get(
            "/v1/forecast/metrics", params={"from": "2017-01-01", "to": "2017-01-31"}
        )
    assert r.status_code == 401
