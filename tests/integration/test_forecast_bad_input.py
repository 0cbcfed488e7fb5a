"""Issue 8's "Bad input", endpoint by endpoint: a period or date that does not parse is a
422 problem naming that one input, and an instant before any data is an empty,
well-formed answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.forecast_worker.accuracy.schemas import FORECAST_CSV_COLUMNS
from services.forecast_worker.deals.schemas import DEAL_CSV_COLUMNS
from services.forecast_worker.hierarchy.schemas import HIERARCHY_CSV_COLUMNS
from services.forecast_worker.metrics.schemas import METRICS_CSV_COLUMNS as METRICS
from services.forecast_worker.metrics.schemas import STAGES_CSV_COLUMNS as STAGES
from services.forecast_worker.projection.schemas import CSV_COLUMNS as PROJECTION
from services.forecast_worker.rollup.schemas import CSV_COLUMNS as ROLLUP
from services.forecast_worker.snapshots.schemas import TREND_CSV_COLUMNS as TREND
from services.forecast_worker.waterfall.schemas import DEAL_CSV_COLUMNS as WATERFALL_DEALS
from services.forecast_worker.waterfall.schemas import ROW_CSV_COLUMNS

pytestmark = pytest.mark.integration

PERIOD = {"period": "2017-Q3"}
WINDOW = {"period": "2017-Q3", "from": "2017-06-01T00:00:00Z", "to": "2017-10-01T00:00:00Z"}
RANGE = {"from": "2017-01-01", "to": "2017-12-31"}
PERIODS = {"from_period": "2017-Q1", "to_period": "2017-Q4", "group_by": "team"}

BAD_QUERIES: list[tuple[str, dict[str, str], str, str]] = [
    ("/v1/forecast/rollup", {**PERIOD, "group_by": "rep"}, "period", "2017-Q5"),
    ("/v1/forecast/rollup", {**PERIOD, "group_by": "rep"}, "as_of", "yesterday"),
    ("/v1/forecast/waterfall", WINDOW, "period", "Q3-2017"),
    ("/v1/forecast/waterfall", WINDOW, "from", "2017-13-01T00:00:00Z"),
    ("/v1/forecast/waterfall", WINDOW, "to", "soon"),
    ("/v1/forecast/waterfall/deals", {**WINDOW, "bucket": "won"}, "period", "FY17"),
    ("/v1/forecast/waterfall/deals", {**WINDOW, "bucket": "won"}, "from", "June"),
    ("/v1/forecast/metrics", RANGE, "from", "2017-02-30"),
    ("/v1/forecast/metrics", RANGE, "to", "end"),
    ("/v1/forecast/metrics/stages", RANGE, "from", "2017/01/01"),
    ("/v1/forecast/snapshots", {**PERIOD, "group_by": "team"}, "period", "2017-W3"),
    ("/v1/forecast/snapshots", {**PERIOD, "group_by": "team"}, "from", "last week"),
    ("/v1/forecast/accuracy", PERIODS, "from_period", "2017-Q0"),
    ("/v1/forecast/accuracy", PERIODS, "to_period", "FY"),
    ("/v1/forecast/projection", {**PERIOD, "group_by": "team"}, "period", "2017-00"),
    ("/v1/forecast/projection", {**PERIOD, "group_by": "team"}, "as_of", "noon"),
    ("/v1/forecast/inspection", {}, "as_of_date", "2017-08-32"),
    ("/v1/forecast/hierarchy", {}, "as_of", "2017-8-1x"),
    ("/v1/forecast/quotas", {}, "period_start", "Q3"),
    ("/v1/forecast/calls", {}, "period", "2017-Q9"),
    ("/v1/forecast/adjustments", {}, "period", "2017-13"),
    ("/v1/deals", {}, "as_of", "tomorrow"),
]


def _assert_names(response: httpx.Response, location: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    assert [e["location"] for e in problem["errors"]] == [location], problem


@pytest.mark.parametrize(
    ("path", "params", "name", "value"),
    BAD_QUERIES,
    ids=[f"{path}?{name}" for path, _, name, _ in BAD_QUERIES],
)
async def test_a_query_value_that_does_not_parse_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str, params: dict[str, str], name: str, value: str
) -> None:
    r = await client.get(path, params={**params, name: value})
    _assert_names(r, f"query.{name}")


BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "/v1/forecast/calls",
        {"rep_id": "r", "period": "2099-Q4", "commit": "1", "currency": "USD", "author": "a"},
        "period",
        "2099-Q5",
    ),
    (
        "/v1/forecast/adjustments",
        {
            "period": "2099-Q4",
            "target": {"rep_id": "r"},
            "category": "commit",
            "amount": "1",
            "currency": "USD",
            "note": "n",
            "author": "a",
        },
        "period",
        "2099/Q4",
    ),
    ("/v1/forecast/snapshots", {"period": "2017-Q3"}, "period", "2017Q3"),
    ("/v1/forecast/snapshots", {"period": "2017-Q3"}, "as_of", "2017-07-01T25:00:00Z"),
    (
        "/v1/forecast/snapshots/backfill",
        {"period": "2017-Q3", "from": "2017-07-01", "to": "2017-07-02"},
        "period",
        "Q",
    ),
    (
        "/v1/forecast/snapshots/backfill",
        {"period": "2017-Q3", "from": "2017-07-01", "to": "2017-07-02"},
        "from",
        "2017-07-00",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "name", "value"),
    BAD_BODIES,
    ids=[f"{path}:{name}" for path, _, name, _ in BAD_BODIES],
)
async def test_a_body_value_that_does_not_parse_is_a_422_naming_it(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], name: str, value: str
) -> None:
    r = await client.post(path, json={**body, name: value})
    _assert_names(r, f"body.{name}")


BEFORE_ANY_DATA = "1971-01-01T00:00:00Z"

EARLY: list[tuple[str, dict[str, str], str, tuple[str, ...]]] = [
    ("/v1/forecast/rollup", {"period": "1971-Q1", "group_by": "region"}, "rows", ROLLUP),
    (
        "/v1/forecast/waterfall",
        {"period": "1971-Q1", "from": "1970-12-01T00:00:00Z"},
        "rows",
        ROW_CSV_COLUMNS,
    ),
    (
        "/v1/forecast/waterfall/deals",
        {"period": "1971-Q1", "from": "1970-12-01T00:00:00Z", "bucket": "created"},
        "items",
        WATERFALL_DEALS,
    ),
    ("/v1/forecast/metrics", {"from": "1970-01-01", "to": "1970-12-31"}, "rows", METRICS),
    ("/v1/forecast/metrics/stages", {"from": "1970-01-01", "to": "1970-12-31"}, "rows", STAGES),
    ("/v1/forecast/snapshots", {"period": "1971-Q1", "group_by": "team"}, "snapshots", TREND),
    (
        "/v1/forecast/accuracy",
        {"from_period": "1970-Q1", "to_period": "1970-Q4"},
        "forecasts",
        FORECAST_CSV_COLUMNS,
    ),
    ("/v1/forecast/projection", {"period": "1971-Q1", "group_by": "team"}, "rows", PROJECTION),
    ("/v1/forecast/hierarchy", {"as_of": "1971-01-01"}, "items", HIERARCHY_CSV_COLUMNS),
    ("/v1/deals", {"as_of": BEFORE_ANY_DATA}, "items", DEAL_CSV_COLUMNS),
]
"""Each read with an instant before any data, the list its JSON holds and its CSV columns."""


@pytest.mark.parametrize(
    ("path", "params", "key", "columns"), EARLY, ids=[path for path, *_ in EARLY]
)
async def test_an_instant_before_any_data_is_an_empty_well_formed_answer(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    key: str,
    columns: tuple[str, ...],
) -> None:
    query = dict(params)
    if "period" in query and path != "/v1/forecast/snapshots":
        query.setdefault("as_of" if "from" not in query else "to", BEFORE_ANY_DATA)
    if path == "/v1/forecast/accuracy":
        query["group_by"] = "team"
    r = await client.get(path, params=query)
    assert r.status_code == 200, r.text
    assert r.json()[key] == [], r.json()
    csv = await client.get(path, params={**query, "format": "csv"})
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [",".join(columns)], "the stable header, no rows"
