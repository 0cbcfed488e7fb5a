"""Which deal changes the stage check refuses, against a small configuration: each against
its deal's pipeline at the change's time, as the fold places it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import (
    DEAL_CREATED,
    DEAL_UPDATED,
    Change,
    StageRules,
    build_versions,
)
from services.forecast_worker.deals.stage_check import (
    UNKNOWN_PIPELINE,
    UNKNOWN_STAGE,
    PipelineMoves,
    needs_stored_pipeline,
    reaching_back,
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
    stored: dict[str, PipelineMoves] = {"b": [(change(0, "b").key, "New")]}
    found = refusals(changes, TABLE, stored)
    assert {i: f.code for i, f in found.items()} == {2: UNKNOWN_STAGE, 3: UNKNOWN_PIPELINE}
    assert needs_stored_pipeline(changes) == {"a", "b", "c"}


T0 = datetime(2026, 2, 1, tzinfo=UTC)


def on(day: int, deal: str = "a", event_type: str = DEAL_UPDATED, **fields: Any) -> Change:
    """A change of `deal` on day `day` of February."""
    key = OrderKey.of(
        time=T0 + timedelta(days=day - 1), sequence=None, source="test://s", event_id=f"{deal}{day}"
    )
    return Change(key=key, deal_id=deal, event_type=event_type, fields=fields)


def moves(*changes: Change) -> PipelineMoves:
    return [(c.key, c.fields["pipeline"]) for c in changes if "pipeline" in c.fields]


def refused(changes: list[Change], stored: dict[str, PipelineMoves]) -> dict[str, str]:
    """The refused changes' codes, by event id."""
    return {changes[i].key.event_id: f.code for i, f in refusals(changes, TABLE, stored).items()}


def test_a_late_stage_is_read_in_the_pipeline_of_its_time_not_the_later_one() -> None:
    history = moves(
        on(1, event_type=DEAL_CREATED, stage="Qualify", pipeline="New"),
        on(3, stage="Renewing", pipeline="Renewal"),
    )
    stored = {"a": history, "b": [(on(1, "b").key, "New"), (on(3, "b").key, "Renewal")]}
    late = [on(2, stage="Propose"), on(2, "b", stage="Renewing")]
    assert refused(late, stored) == {"b2": UNKNOWN_STAGE}, "Propose in New; Renewing is not"
    newer = [on(4, stage="Renewing"), on(4, "b", stage="Propose")]
    assert refused(newer, stored) == {"b4": UNKNOWN_STAGE}, "after the move, Renewal"


def test_a_change_setting_its_pipeline_is_read_in_it_whenever_it_comes() -> None:
    stored = {"a": moves(on(1, stage="Qualify", pipeline="New"), on(3, pipeline="Renewal"))}
    late = [
        on(2, stage="Renewing", pipeline="Renewal"),
        on(2, "b", stage="Renewing", pipeline="New"),
    ]
    assert refused(late, stored) == {"b2": UNKNOWN_STAGE}


def test_a_change_before_any_move_of_its_deal_is_in_the_default_pipeline() -> None:
    """As the fold holds it: the version it opens has no pipeline until the creation's."""
    stored = {"a": moves(on(3, event_type=DEAL_CREATED, stage="Renewing", pipeline="Renewal"))}
    assert refused([on(1, stage="Renewing"), on(2, stage="Propose")], stored) == {
        "a1": UNKNOWN_STAGE
    }
    unborn = [
        on(3, event_type=DEAL_CREATED, stage="Renewing", pipeline="Renewal"),
        on(1, stage="Renewing"),
    ]
    assert refused(unborn, {}) == {"a1": UNKNOWN_STAGE}, "same in one batch, whatever its order"


def test_a_batch_is_judged_in_its_deals_order_not_its_arrival_order() -> None:
    batch = [
        on(1, event_type=DEAL_CREATED, stage="Qualify", pipeline="New"),
        on(3, stage="Renewing", pipeline="Renewal"),
        on(2, stage="Propose"),  # before the move
        on(5, stage="Renewing"),  # after it
        on(4, pipeline="Partners"),  # refused: the deal stays in Renewal
        on(6, stage="Qualify"),
    ]
    assert refused(batch, {}) == {"a4": UNKNOWN_PIPELINE, "a6": UNKNOWN_STAGE}


def test_a_late_move_of_the_batch_counts_only_until_a_stored_one_after_it() -> None:
    stored = {"a": moves(on(1, stage="Qualify", pipeline="New"), on(4, pipeline="New"))}
    batch = [on(5, stage="Qualify"), on(2, pipeline="Renewal"), on(3, stage="Renewing")]
    assert refused(batch, stored) == {}, "Renewing on the 3rd in Renewal, Qualify on the 5th in New"


def test_only_deals_a_change_reaches_back_into_need_their_stored_moves() -> None:
    current = {"a": on(3).key, "b": on(3, "b").key}
    batch = [
        on(4, stage="Propose"),
        on(2, "b", amount="5"),
        on(5, "b", stage="Qualify"),
        on(1, "c"),
    ]
    assert reaching_back(batch, current) == {"b"}
    assert reaching_back([on(3)], current) == {"a"}, "a redelivery of the current change"


_STAGES = st.sampled_from(["Qualify", "Propose", "Renewing"])
_PIPELINES = st.sampled_from(["New", "Renewal", "Partners", None])
_FIELDS = st.one_of(
    st.fixed_dictionaries({"stage": _STAGES}),
    st.fixed_dictionaries({"pipeline": _PIPELINES}),
    st.fixed_dictionaries({"stage": _STAGES, "pipeline": _PIPELINES}),
    st.just({"amount": "5"}),
)
_CHANGES = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2), _FIELDS), max_size=12)


def _history(spec: list[tuple[int, int, dict[str, Any]]], prefix: str) -> list[Change]:
    return [
        Change(
            key=OrderKey.of(
                time=T0 + timedelta(days=day), sequence=seq, source="s", event_id=f"{prefix}{n}"
            ),
            deal_id="a",
            event_type=DEAL_UPDATED,
            fields=fields,
        )
        for n, (day, seq, fields) in enumerate(spec)
    ]


@settings(max_examples=150, deadline=None)
@given(stored_spec=_CHANGES, batch_spec=_CHANGES, seed=st.integers(0, 2**32))
def test_a_stage_alone_is_refused_exactly_when_the_fold_puts_it_in_a_pipeline_without_it(
    stored_spec: list[tuple[int, int, dict[str, Any]]],
    batch_spec: list[tuple[int, int, dict[str, Any]]],
    seed: int,
) -> None:
    """Against the fold of the stored changes and the accepted ones of the batch, in any
    arrival order: the pipeline the change's stage is looked up in is the one of the
    version just before it."""
    stored, batch = _history(stored_spec, "s"), _history(batch_spec, "b")
    random.Random(seed).shuffle(batch)
    found = refusals(batch, TABLE, {"a": moves(*stored)})
    kept = [c for i, c in enumerate(batch) if i not in found]
    versions = build_versions(stored + kept, StageRules.of((), ()))
    for index, c in enumerate(batch):
        if c.fields.get("stage") is None or "pipeline" in c.fields:
            continue
        before = [v for v in versions if v.cause < c.key]
        pipeline = before[-1].state.values.get("pipeline") if before else None
        assert (index in found) == (TABLE.lookup(pipeline, c.fields["stage"]) is None)
