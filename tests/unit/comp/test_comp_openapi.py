"""Issue 9: every commission table is also served as CSV, and published so in the OpenAPI
the same way (a `format` parameter, `text/csv` beside JSON, problems for bad input)."""

from __future__ import annotations

import pytest

from services.comp_engine.app import create_app

COMP_TABLES = (
    "/v1/comp/ledger",
    "/v1/comp/statements/{rep_id}/{period}",
    "/v1/comp/amortization",
    "/v1/comp/dead-letters",
    "/v1/comp/disputes",
    "/v1/comp/holds",
    "/v1/comp/waiting",
    "/v1/comp/assignments",
)


@pytest.mark.parametrize("path", COMP_TABLES)
def test_each_comp_table_is_published_as_json_and_csv_with_problems(path: str) -> None:
    operation = create_app().openapi()["paths"][path]["get"]
    assert {"application/json", "text/csv"} <= set(operation["responses"]["200"]["content"])
    assert "format" in {p["name"] for p in operation["parameters"]}
    assert "application/problem+json" in operation["responses"]["422"]["content"], path


COMP_PAGES = (
    "/v1/comp/ledger",
    "/v1/comp/dead-letters",
    "/v1/comp/disputes",
    "/v1/comp/holds",
    "/v1/comp/waiting",
    "/v1/comp/assignments",
)


@pytest.mark.parametrize("path", COMP_PAGES)
def test_each_comp_list_is_published_as_a_cursor_page(path: str) -> None:
    """The same page on every comp list: `limit` and `cursor` in, `items` and
    `next_cursor` out."""
    spec = create_app().openapi()
    operation = spec["paths"][path]["get"]
    assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(page["required"]) == {"items", "next_cursor"}
    assert page["properties"]["items"]["type"] == "array"
