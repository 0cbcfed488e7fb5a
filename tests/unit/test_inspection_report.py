"""Inspection pages: required fields read from the deal's columns and properties, the
stage's rule found by pipeline, and pages that hold whole deals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.inspection.report import inspection_page, missing_fields
from services.forecast_worker.inspection.repository import OpenRow
from services.forecast_worker.inspection.rules import Thresholds

NOW = datetime(2026, 11, 30, tzinfo=UTC)
STAGES = StageTable.of(
    ForecastConfig.model_validate(
        {
            "pipelines": [
                {
                    "name": "Sales",
                    "stages": [
                        {
                            "name": "Propose",
                            "order": 1,
                            "probability": "50",
                            "forecast_category": "pipeline",
                            "status": "open",
                            "required_fields": ["amount", "properties.budget"],
                        }
                    ],
                }
            ],
            "default_pipeline": "Sales",
        }
    )
)
HEALTHY = OpenRow(
    deal_id="D-1",
    owner_id="rep-1",
    stage="Propose",
    pipeline=None,
    close_date=date(2027, 1, 1),
    entered_stage_at=NOW - timedelta(days=1),
    close_dates=[date(2027, 1, 1)],
    fields={"amount": Decimal(5), "properties": {"budget": None}},
)


def row(deal_id: str, **changes: Any) -> OpenRow:
    return replace(HEALTHY, deal_id=deal_id, **changes)


def page(deals: list[OpenRow], after: str | None = None, limit: int = 10) -> Any:
    return inspection_page(
        deals,
        stages=STAGES,
        median_days={},
        now=NOW,
        thresholds=Thresholds(),
        after=after,
        limit=limit,
    )


def test_a_field_is_missing_when_its_column_is_null_or_its_property_key_absent() -> None:
    required = ["amount", "close_date", "properties.budget", "properties.champion"]
    fields = {"amount": None, "close_date": date(2027, 1, 1), "properties": {"budget": None}}
    assert missing_fields(fields, required) == ["amount", "properties.champion"]
    assert missing_fields({"properties": None}, ["properties.budget"]) == ["properties.budget"]


def test_the_stage_rule_gives_the_required_fields_and_a_healthy_deal_gives_no_row() -> None:
    bare = row("D-2", fields={"amount": None, "properties": {}})
    other_pipeline = row("D-3", pipeline="Renewals", fields={"properties": {}})
    result = page([HEALTHY, bare, other_pipeline])
    assert [(r.deal_id, r.rule, r.reason) for r in result.rows] == [
        ("D-2", "missing_fields", "stage 'Propose' requires amount, properties.budget")
    ]
    assert result.rows[0].owner_id == "rep-1"
    assert result.last_deal_id is None


def test_a_page_holds_whole_deals_and_its_cursor_is_the_last_deal_on_it() -> None:
    late = {"close_date": date(2026, 11, 1), "fields": {"amount": None, "properties": {}}}
    deals = [row("A", **late), row("A1"), row("B", **late), row("C", **late)]
    first = page(deals, limit=2)
    assert [(r.deal_id, r.rule) for r in first.rows] == [
        ("A", "missing_fields"),
        ("A", "past_close_date"),
        ("B", "missing_fields"),
        ("B", "past_close_date"),
    ]
    assert first.last_deal_id == "B"
    second = page(deals, after="B", limit=2)
    assert {r.deal_id for r in second.rows} == {"C"}
    assert second.last_deal_id is None
    assert page(deals, limit=3).last_deal_id is None
