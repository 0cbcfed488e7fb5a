"""The forecast configuration document: what it refuses, and where it says the fault is."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "forecast.example.yaml"


def _stage(name: str, order: int, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "order": order,
        "probability": 10,
        "forecast_category": "pipeline",
        "status": "open",
        **overrides,
    }


def _document(*stages: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"pipelines": [{"name": "sales", "stages": list(stages)}], **overrides}


def _errors(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        ForecastConfig.model_validate(document)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in raised.value.errors()]


def test_the_example_file_is_a_valid_configuration_for_the_dataset() -> None:
    config = ForecastConfig.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert config.default_pipeline == "default"
    stages = {s.name: s for s in config.pipelines[0].stages}
    assert list(stages) == ["Prospecting", "Engaging", "Won", "Lost"]
    assert stages["Engaging"].probability == Decimal(50)
    assert stages["Engaging"].required_fields == ["amount", "close_date"]
    assert (stages["Won"].forecast_category, stages["Won"].status) == ("closed", "won")
    assert (stages["Lost"].forecast_category, stages["Lost"].status) == ("omitted", "lost")


def test_the_empty_configuration_has_no_pipelines_and_a_january_year() -> None:
    empty = ForecastConfig()
    assert (empty.fiscal_year_start_month, empty.pipelines, empty.default_pipeline) == (1, [], None)
    assert StageTable.of(empty).lookup(None, "Won") is None


def test_stages_are_kept_in_their_order_and_the_default_pipeline_is_the_first() -> None:
    config = ForecastConfig.model_validate(_document(_stage("b", 2), _stage("a", 1)))
    assert [s.name for s in config.pipelines[0].stages] == ["a", "b"]
    assert config.default_pipeline == "sales"


def test_a_stage_name_repeated_in_a_pipeline_is_refused_with_its_positions() -> None:
    assert _errors(_document(_stage("Won", 1), _stage("won", 2))) == [
        ("pipelines.0.stages", "Value error, stage name 'Won' is repeated, at positions 0 and 1")
    ]


def test_a_stage_order_repeated_in_a_pipeline_is_refused() -> None:
    [(location, message)] = _errors(_document(_stage("a", 1), _stage("b", 1)))
    assert location == "pipelines.0.stages"
    assert "stage order 1 is repeated, at positions 0 and 1" in message


def test_the_same_stage_name_in_two_pipelines_is_allowed() -> None:
    document: dict[str, Any] = {
        "pipelines": [
            {"name": "new", "stages": [_stage("Won", 1, status="won", forecast_category="closed")]},
            {"name": "renewals", "stages": [_stage("won", 1, status="won", probability=100)]},
        ]
    }
    assert _errors(document) == [
        (
            "pipelines.1.stages.0",
            "Value error, stage 'won' is won, so its forecast_category must be closed or "
            "omitted, not 'pipeline'",
        )
    ]
    document["pipelines"][1]["stages"][0]["forecast_category"] = "closed"
    assert len(StageTable.of(ForecastConfig.model_validate(document)).rules) == 2


@pytest.mark.parametrize("category", ["pipeline", "best_case", "commit"])
def test_a_lost_stage_must_be_closed_or_omitted(category: str) -> None:
    [(location, message)] = _errors(
        _document(_stage("Lost", 1, status="lost", forecast_category=category))
    )
    assert location == "pipelines.0.stages.0"
    assert f"must be closed or omitted, not '{category}'" in message


def test_an_unknown_required_field_is_refused_at_its_index() -> None:
    fields = ["amount", "properties.budget", "budget", "properties."]
    errors = _errors(_document(_stage("a", 1, required_fields=fields)))
    assert [location for location, _ in errors] == [
        "pipelines.0.stages.0.required_fields.2",
        "pipelines.0.stages.0.required_fields.3",
    ]
    assert "'budget' is not a deal field: expected one of name, account_id" in errors[0][1]
    assert "or properties.<key> for a CRM property" in errors[0][1]


@pytest.mark.parametrize("probability", [-1, "100.01", 101])
def test_a_probability_outside_0_to_100_is_refused(probability: object) -> None:
    [(location, _)] = _errors(_document(_stage("a", 1, probability=probability)))
    assert location == "pipelines.0.stages.0.probability"


@pytest.mark.parametrize("month", [0, 13])
def test_a_fiscal_start_month_outside_the_year_is_refused(month: int) -> None:
    [(location, _)] = _errors(_document(_stage("a", 1), fiscal_year_start_month=month))
    assert location == "fiscal_year_start_month"


def test_a_default_pipeline_that_is_not_configured_is_refused() -> None:
    [(location, message)] = _errors(_document(_stage("a", 1), default_pipeline="renewals"))
    assert location == "default_pipeline"
    assert "'renewals' is not one of the pipelines ('sales')" in message


def test_repeated_pipelines_empty_pipelines_and_unknown_keys_are_refused() -> None:
    document = {
        "pipelines": [
            {"name": "Sales", "stages": [_stage("a", 1)]},
            {"name": "sales", "stages": [_stage("a", 1)]},
        ]
    }
    assert _errors(document) == [
        ("pipelines", "Value error, pipeline name 'Sales' is repeated, at positions 0 and 1")
    ]
    assert _errors({"pipelines": [{"name": "x", "stages": []}]})[0][0] == "pipelines.0.stages"
    assert _errors({"pipelinez": []})[0][0] == "pipelinez"


def _table() -> StageTable:
    return StageTable.of(
        ForecastConfig.model_validate(
            {
                "default_pipeline": "New",
                "pipelines": [
                    {
                        "name": "New",
                        "stages": [
                            _stage("Discovery", 1),
                            _stage("Won", 2, status="won", forecast_category="closed"),
                        ],
                    },
                    {"name": "Renewals", "stages": [_stage("Discovery", 1, probability=80)]},
                ],
            }
        )
    )


def test_lookup_matches_names_without_case_and_reads_a_missing_pipeline_as_the_default() -> None:
    table = _table()
    rule = table.lookup("new", "DISCOVERY")
    assert rule is not None
    assert (rule.pipeline, rule.stage, rule.probability) == ("New", "Discovery", Decimal(10))
    assert table.lookup(None, "won") == table.lookup("New", "Won")
    renewal = table.lookup("renewals", "discovery")
    assert renewal is not None
    assert renewal.probability == Decimal(80)
    assert table.lookup("Renewals", "Won") is None
    assert table.lookup("Partners", "Discovery") is None
    assert table.lookup("New", None) is None


def test_a_deals_own_category_overrides_its_stages() -> None:
    table = _table()
    assert table.category_of({"stage": "Discovery"}) == "pipeline"
    assert table.category_of({"stage": "Discovery", "forecast_category": "commit"}) == "commit"
    assert table.category_of({"pipeline": "New", "stage": "won"}) == "closed"
    assert table.category_of({"stage": "Negotiation"}) is None
    assert table.category_of({"stage": "Negotiation", "forecast_category": "best_case"}) == (
        "best_case"
    )
