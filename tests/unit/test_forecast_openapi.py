"""The forecast worker's published API keeps its operations where clients found them."""

from __future__ import annotations

import pytest

from services.forecast_worker.app import create_app


def test_the_dead_letter_operations_are_tagged_deals_and_operations() -> None:
    paths = create_app().openapi()["paths"]
    assert paths["/v1/forecast/dead-letters"]["get"]["tags"] == ["deals", "operations"]
    replay = paths["/v1/forecast/dead-letters/{letter_id}/replay"]["post"]
    assert replay["tags"] == ["deals", "operations"]


ISSUE_8_TABLES = (
    "/v1/forecast/rollup",
    "/v1/forecast/calls",
    "/v1/forecast/adjustments",
    "/v1/forecast/snapshots",
    "/v1/forecast/waterfall",
    "/v1/forecast/waterfall/deals",
    "/v1/forecast/metrics",
    "/v1/forecast/metrics/stages",
    "/v1/forecast/inspection",
    "/v1/forecast/projection",
    "/v1/forecast/accuracy",
    "/v1/forecast/hierarchy",
    "/v1/forecast/quotas",
)
"""Issue 8's table-shaped reads (and the hierarchy and quotas they stand on)."""


@pytest.mark.parametrize("path", ISSUE_8_TABLES)
def test_each_forecast_table_is_published_as_json_and_csv_with_problems(path: str) -> None:
    operation = create_app().openapi()["paths"][path]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert "format" in {p["name"] for p in operation["parameters"]}
    problem = operation["responses"]["422"]["content"]
    assert "application/problem+json" in problem, path


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/forecast/calls", "post"),
        ("/v1/forecast/adjustments", "post"),
        ("/v1/forecast/snapshots", "post"),
        ("/v1/forecast/snapshots/backfill", "post"),
        ("/v1/forecast/config", "put"),
    ],
)
def test_each_forecast_write_is_published_with_its_problems(path: str, method: str) -> None:
    responses = create_app().openapi()["paths"][path][method]["responses"]
    assert "application/problem+json" in responses["422"]["content"], (path, method)


@pytest.mark.parametrize("path", ["/v1/forecast/calls", "/v1/forecast/adjustments"])
def test_a_call_or_adjustment_for_a_closed_period_is_a_published_409(path: str) -> None:
    responses = create_app().openapi()["paths"][path]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
