"""Which deal changes the stage check refuses, against a small configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import DEAL_CREATED, DEAL_UPDATED, Change
from services.forecast_worker.deals.stage_check import (
    UNKNOWN_PIPELINE,
    UNKNOWN_STAGE,
    needs_stored_pipeline,
    refusals,
    unknown,
)
from shared.ordering import OrderKey
from tests.support.forecast_config import stage

TABLE = StageTable.of(
    ForecastConfig.model_validate(
        {
            "pipelines": [
                {"name": "New", "stages": [stage("Qualify", 1), stage("Propose", 2)]},
                {"name": "Renewal", "stages": [stage("Renewing", 1)]},
            ],
            "default_pipeline": "New",
        }
    )
)


def change(n: int, deal: str, event_type: str = DEAL_UPDATED, **fields: Any) -> Change:
    key = OrderKey.of(
        time=datetime(2026, 1, 1, tzinfo=UTC), sequence=n, source="test://s", event_id=f"e{n}"
    )
    return Change(key=key, deal_id=deal, event_type=event_type, fields=fields)


def test_an_unconfigured_deployment_refuses_nothing() -> None:
    empty = StageTable.of(ForecastConfig())
    assert unknown({"stage": "Anything", "pipeline": "Whatever"}, None, empty) is None


def test_a_change_is_checked_only_for_the_stage_and_pipeline_it_sets() -> None:
    assert unknown({"amount": "10"}, "Nowhere", TABLE) is None
    assert unknown({"stage": "qualify"}, None, TABLE) is None, "default pipeline, any case"
    assert unknown({"stage": "RENEWING", "pipeline": "renewal"}, None, TABLE) is None


def test_the_reason_names_the_stage_and_the_pipeline() -> None:
    found = unknown({"stage": "Mystery"}, None, TABLE)
    assert found is not None
    assert (found.code, found.detail) == (
        UNKNOWN_STAGE,
        "stage 'Mystery' is not in pipeline 'New' of the forecast configuration",
    )
    in_renewal = unknown({"stage": "Propose"}, "Renewal", TABLE)
    assert in_renewal is not None
    assert in_renewal.detail == (
        "stage 'Propose' is not in pipeline 'Renewal' of the forecast configuration"
    )
    pipeline = unknown({"pipeline": "Partners"}, None, TABLE)
    assert pipeline is not None
    assert (pipeline.code, pipeline.detail) == (
        UNKNOWN_PIPELINE,
        "pipeline 'Partners' is not in the forecast configuration",
    )


def test_a_batch_reads_each_stage_against_its_deals_pipeline_as_the_batch_leaves_it() -> None:
    changes = [
        change(1, "a", DEAL_CREATED, stage="Renewing", pipeline="Renewal"),
        change(2, "a", stage="Renewing"),  # in Renewal, set just before
        change(3, "b", stage="Renewing"),  # b is stored in New
        change(4, "c", stage="Qualify", pipeline="Partners"),
        change(5, "c", stage="Qualify"),  # c's pipeline change was refused: still default
        change(6, "d", amount="5"),
    ]
    stored = {"b": "New"}
    found = refusals(changes, TABLE, stored)
    assert {i: f.code for i, f in found.items()} == {2: UNKNOWN_STAGE, 3: UNKNOWN_PIPELINE}
    assert needs_stored_pipeline(changes) == {"a", "b", "c"}
