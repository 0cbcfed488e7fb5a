"""Deal inspection through the API: one hand-made deal per rule, and a healthy one, in
1950, inspected as of the last day of that year, so every day in stage and every median
is known; JSON and CSV, paged through until the end."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import pytest

from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

AS_OF = "1950-12-31"
COLUMNS = ["deal_id", "owner_id", "stage", "rule", "reason"]


def _stage(name: str, order: int, status: str, required: list[str]) -> dict[str, Any]:
    category = {"open": "pipeline", "won": "closed", "lost": "omitted"}[status]
    return {
        "name": name,
        "order": order,
        "probability": "100" if status == "won" else "0" if status == "lost" else "50",
        "forecast_category": category,
        "status": status,
        "required_fields": required,
    }


CONFIG = {
    "pipelines": [
        {
            "name": "Inspect",
            "stages": [
                _stage("Qualify", 1, "open", []),
                _stage("Propose", 2, "open", ["amount", "properties.budget"]),
                _stage("Won", 3, "won", []),
                _stage("Lost", 4, "lost", []),
            ],
        }
    ],
    "default_pipeline": "Inspect",
}


def _created(deal_id: str, owner: str, stage: str, day: str, close: str) -> dict[str, Any]:
    at = f"{day}T00:00:00Z"
    data = {
        "deal_id": deal_id,
        "owner_id": owner,
        "amount": "100",
        "currency": "EUR",
        "stage": stage,
        "pipeline": "Inspect",
        "close_date": close,
        "created_at": at,
        "properties": {"champion": "Ada"},
    }
    return event(CREATED, data, time=at)


def _updated(deal_id: str, day: str, **data: Any) -> dict[str, Any]:
    return event(UPDATED, {"deal_id": deal_id, **data}, time=f"{day}T00:00:00Z")


async def _pages(client: httpx.AsyncClient, **params: str) -> list[dict[str, str]]:
    """Every row of the inspection, following the cursor (CSV rows when format=csv)."""
    rows: list[dict[str, str]] = []
    cursor: str | None = None
    while True:
        query = {"as_of_date": AS_OF, "limit": "1000", **params}
        if cursor:
            query["cursor"] = cursor
        r = await client.get("/v1/forecast/inspection", params=query)
        assert r.status_code == 200, r.text
        if params.get("format") == "csv":
            reader = csv.DictReader(io.StringIO(r.text))
            assert reader.fieldnames == COLUMNS
            rows.extend(reader)
            cursor = r.headers.get("X-Next-Cursor")
        else:
            body = r.json()
            rows.extend(body["rows"])
            cursor = body["next_cursor"]
        if cursor is None:
            return rows


@pytest.mark.usefixtures("restore_forecast_config")
async def test_each_rule_flags_its_deal_and_says_why(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/forecast/config", json=CONFIG)).status_code == 200
    tag = uuid.uuid4().hex[:8]
    rep = f"rep-{tag}"
    stuck, pushed, missing, late, healthy = (
        f"i-{name}-{tag}" for name in ("stuck", "pushed", "missing", "late", "healthy")
    )
    events = [
        # Two closed deals spent 10 days in Qualify: its median.
        _created(f"i-won-{tag}", rep, "Qualify", "1950-01-01", "1950-03-01"),
        _updated(f"i-won-{tag}", "1950-01-11", stage="Won", close_date="1950-01-11"),
        _created(f"i-lost-{tag}", rep, "Qualify", "1950-02-01", "1950-03-01"),
        _updated(f"i-lost-{tag}", "1950-02-11", stage="Lost", close_date="1950-02-11"),
        # Back in Qualify since 1 December: 30 days, timed from its return, not its creation.
        _created(stuck, rep, "Qualify", "1950-11-01", "1951-03-01"),
        _updated(stuck, "1950-11-20", stage="Propose", properties={"budget": "1"}),
        _updated(stuck, "1950-12-01", stage="Qualify"),
        _updated(stuck, "1950-12-10", amount="120"),
        # Pushed three times; the pull-in between does not count.
        _created(pushed, rep, "Qualify", "1950-12-25", "1951-01-10"),
        _updated(pushed, "1950-12-26", close_date="1951-01-20"),
        _updated(pushed, "1950-12-27", close_date="1951-01-05"),
        _updated(pushed, "1950-12-28", close_date="1951-02-01"),
        _updated(pushed, "1950-12-29", close_date="1951-03-01"),
        _created(missing, rep, "Propose", "1950-12-20", "1951-02-01"),
        _created(late, rep, "Qualify", "1950-12-28", "1950-12-15"),
        _created(healthy, rep, "Qualify", "1950-12-29", "1951-02-01"),
    ]
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    mine = {stuck, pushed, missing, late, healthy}
    expected = [
        {
            "deal_id": late,
            "owner_id": rep,
            "stage": "Qualify",
            "rule": "past_close_date",
            "reason": "still open with close date 1950-12-15 in the past",
        },
        {
            "deal_id": missing,
            "owner_id": rep,
            "stage": "Propose",
            "rule": "missing_fields",
            "reason": "stage 'Propose' requires properties.budget",
        },
        {
            "deal_id": pushed,
            "owner_id": rep,
            "stage": "Qualify",
            "rule": "pushed",
            "reason": "close date pushed 3 times (more than 2)",
        },
        {
            "deal_id": stuck,
            "owner_id": rep,
            "stage": "Qualify",
            "rule": "stuck",
            "reason": "in stage 'Qualify' for 30.0 days, more than 2 x its median of 10.00 days",
        },
    ]

    async def settled() -> list[dict[str, str]] | None:
        rows = [row for row in await _pages(client) if row["deal_id"] in mine]
        return rows if rows == expected else None

    await eventually(settled, within=60, interval=0.5)
    as_csv = [row for row in await _pages(client, format="csv") if row["deal_id"] in mine]
    assert as_csv == expected
    # Small pages (each read a few open deals at a time, flagged or not) list the same rows.
    paged = [row for row in await _pages(client, limit="3") if row["deal_id"] in mine]
    assert paged == expected
    # Looser thresholds clear the stuck and pushed deals.
    looser = await _pages(client, stuck_factor="3.5", max_pushes="3")
    assert {row["rule"] for row in looser if row["deal_id"] in mine} == {
        "past_close_date",
        "missing_fields",
    }


@pytest.mark.parametrize(
    "params",
    [
        {"stuck_factor": "0"},
        {"stuck_factor": "many"},
        {"max_pushes": "-1"},
        {"as_of_date": "1950-13-01"},
        {"limit": "0"},
    ],
)
async def test_invalid_thresholds_are_refused_naming_them(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    r = await client.get("/v1/forecast/inspection", params=params)
    assert r.status_code == 422, r.text
    assert next(iter(params)) in r.text
