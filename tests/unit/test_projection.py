"""The deal fold and its versions: pure, and independent of the order changes arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.handler import to_change
from services.forecast_worker.deals.projection import (
    DEAL_CANCELLED,
    DEAL_CREATED,
    DEAL_DELETED,
    DEAL_UPDATED,
    Change,
    DealState,
    StageRules,
    Version,
    build_versions,
    extend_versions,
    fold,
)
from shared.events import validate_event
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES

RULES = StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def change(
    event_type: str,
    minutes: int = 0,
    *,
    sequence: int | None = None,
    event_id: str = "e",
    source: str = "crm",
    deal_id: str = "deal-1",
    **fields: Any,
) -> Change:
    key = OrderKey.of(time=at(minutes), sequence=sequence, source=source, event_id=event_id)
    return Change(key=key, deal_id=deal_id, event_type=event_type, fields=fields)


def created(minutes: int = 0, **fields: Any) -> Change:
    base = {"name": "Deal", "owner_id": "rep-1", "stage": "Discovery"}
    return change(DEAL_CREATED, minutes, event_id=f"c{minutes}", **(base | fields))


def updated(minutes: int, **fields: Any) -> Change:
    return change(DEAL_UPDATED, minutes, event_id=f"u{minutes}", **fields)


def deleted(minutes: int) -> Change:
    return change(DEAL_DELETED, minutes, event_id=f"d{minutes}")


# --- StageRules -------------------------------------------------------------------------


def test_stage_rules_case_insensitive() -> None:
    rules = StageRules.of(["Closed-WON"], ["Closed-Lost"])
    assert rules.status_for("closed-won") == "won"
    assert rules.status_for("CLOSED-LOST") == "lost"
    assert rules.status_for("closed won") == "open"
    assert rules.status_for(None) == "open"


def _configured() -> StageRules:
    """The default names under a configuration whose `Signed` is won in pipeline `Main`
    (the default) and `Won` is open in pipeline `Other`."""

    def stage(name: str, status: str) -> dict[str, Any]:
        category = "pipeline" if status == "open" else "closed"
        return {
            "name": name,
            "order": 1,
            "probability": "50",
            "forecast_category": category,
            "status": status,
            "required_fields": [],
        }

    config = ForecastConfig.model_validate(
        {
            "pipelines": [
                {"name": "Main", "stages": [stage("Signed", "won")]},
                {"name": "Other", "stages": [stage("Won", "open")]},
            ],
            "default_pipeline": "Main",
        }
    )
    return RULES.under(StageTable.of(config))


def test_configured_status_decides_by_pipeline_and_stage() -> None:
    rules = _configured()
    assert rules.status_for("signed") == "won", "the default pipeline, any case"
    assert rules.status_for("Won", "other") == "open", "configured, whatever its name says"
    assert rules.status_for("Closed Won", "Main") == "won", "unknown to it: the names decide"
    assert rules.status_for(None, "Main") == "open"


def test_a_pipeline_change_rereads_the_status() -> None:
    rules = _configured()
    state = fold(None, created(stage="Won", pipeline="Other"), rules)
    assert state.values["status"] == "open"
    moved = fold(state, updated(1, pipeline="Main"), rules)
    assert moved.values["status"] == "won", "Won is unknown to Main: its name decides"
    kept = fold(moved, updated(2, status="lost", pipeline="Other"), rules)
    assert kept.values["status"] == "lost", "an explicit status wins"


# --- fold -------------------------------------------------------------------------------


def test_created_sets_fields_and_derives_open_status() -> None:
    state = fold(None, created(amount="100", currency="USD", properties={"p": 1}), RULES)
    assert state.deal_id == "deal-1"
    assert state.values == {
        "name": "Deal",
        "owner_id": "rep-1",
        "stage": "Discovery",
        "amount": "100",
        "currency": "USD",
        "status": "open",
    }
    assert state.properties == {"p": 1}
    assert state.deleted is False


def test_created_in_won_or_lost_stage() -> None:
    assert fold(None, created(stage="Closed Won"), RULES).values["status"] == "won"
    assert fold(None, created(stage="closedlost"), RULES).values["status"] == "lost"


def test_update_merges_into_previous_values() -> None:
    first = fold(None, created(amount="100", currency="USD"), RULES)
    second = fold(first, updated(1, amount="250", close_date="2024-06-30"), RULES)
    assert second.values["amount"] == "250"
    assert second.values["close_date"] == "2024-06-30"
    assert second.values["name"] == "Deal"
    assert second.values["currency"] == "USD"
    assert second.values["status"] == "open"
    assert first.values["amount"] == "100", "fold must not mutate the previous state"


def test_stage_update_rederives_status() -> None:
    state = fold(None, created(), RULES)
    won = fold(state, updated(1, stage="closed_won"), RULES)
    assert won.values["status"] == "won"
    reopened = fold(won, updated(2, stage="Negotiation"), RULES)
    assert reopened.values["status"] == "open"


def test_update_without_stage_keeps_status() -> None:
    state = fold(None, created(status="won"), RULES)
    assert state.values["status"] == "won"
    later = fold(state, updated(1, amount="5"), RULES)
    assert later.values["status"] == "won"


def test_explicit_status_wins_over_stage_in_same_change() -> None:
    state = fold(None, created(stage="Closed Won", status="lost"), RULES)
    assert state.values["status"] == "lost"
    later = fold(state, updated(1, stage="closedlost", status="open"), RULES)
    assert later.values["status"] == "open"
    assert later.values["stage"] == "closedlost"


def test_update_before_any_create_derives_status_from_missing_stage() -> None:
    state = fold(None, updated(0, amount="7"), RULES)
    assert state.values == {"amount": "7", "status": "open"}
    assert state.deleted is False


def test_properties_merge_per_key() -> None:
    state = fold(None, created(properties={"a": 1, "b": 2}), RULES)
    state = fold(state, updated(1, properties={"b": 3, "c": 4}), RULES)
    assert state.properties == {"a": 1, "b": 3, "c": 4}
    assert "properties" not in state.values
    state = fold(state, updated(2, properties=None), RULES)
    assert state.properties == {"a": 1, "b": 3, "c": 4}


def test_fields_outside_the_deal_columns_are_ignored() -> None:
    state = fold(None, created(deal_id_extra="x", color="red"), RULES)
    assert "color" not in state.values
    assert "deal_id_extra" not in state.values


def test_delete_sets_deleted_and_keeps_values() -> None:
    state = fold(None, created(amount="10", currency="EUR", properties={"k": "v"}), RULES)
    gone = fold(state, deleted(1), RULES)
    assert gone.deleted is True
    assert gone.values == state.values
    assert gone.properties == {"k": "v"}
    assert state.deleted is False


def test_update_after_delete_stays_deleted() -> None:
    gone = fold(fold(None, created(), RULES), deleted(1), RULES)
    after = fold(gone, updated(2, amount="3"), RULES)
    assert after.deleted is True
    assert after.values["amount"] == "3"


def test_created_after_delete_undeletes() -> None:
    gone = fold(fold(None, created(amount="10", currency="USD"), RULES), deleted(1), RULES)
    back = fold(gone, created(2, name="Again"), RULES)
    assert back.deleted is False
    assert back.values["name"] == "Again"
    assert back.values["amount"] == "10"


def test_delete_of_unknown_deal() -> None:
    state = fold(None, deleted(0), RULES)
    assert state == DealState(deal_id="deal-1", values={}, properties={}, deleted=True)


# --- build_versions / extend_versions ---------------------------------------------------


def test_build_versions_of_nothing() -> None:
    assert build_versions([], RULES) == []


def test_versions_numbered_and_chained() -> None:
    changes = [updated(30, amount="3"), created(0, amount="1", currency="USD"), deleted(45)]
    changes.append(updated(10, amount="2"))
    versions = build_versions(changes, RULES)
    assert [v.number for v in versions] == [1, 2, 3, 4]
    assert [v.valid_from for v in versions] == [at(0), at(10), at(30), at(45)]
    assert [v.valid_to for v in versions] == [at(10), at(30), at(45), None]
    assert [v.state.values.get("amount") for v in versions] == ["1", "2", "3", "3"]
    assert [v.state.deleted for v in versions] == [False, False, False, True]
    assert [v.cause.event_id for v in versions] == ["c0", "u10", "u30", "d45"]


def test_same_time_changes_ordered_by_sequence() -> None:
    a = change(DEAL_UPDATED, 5, sequence=2, event_id="a", amount="late")
    b = change(DEAL_UPDATED, 5, sequence=1, event_id="b", amount="early")
    c = change(DEAL_UPDATED, 5, sequence=None, event_id="z", amount="none")
    versions = build_versions([a, b, c], RULES)
    assert [v.state.values["amount"] for v in versions] == ["none", "early", "late"]
    assert [v.valid_from for v in versions] == [at(5)] * 3
    assert [v.valid_to for v in versions] == [at(5), at(5), None]


def test_older_change_never_overwrites_newer_value() -> None:
    newer = updated(20, amount="200", stage="Negotiation")
    older = updated(10, amount="100", name="Renamed")
    versions = build_versions([created(0), newer, older], RULES)
    final = versions[-1].state
    assert final.values["amount"] == "200"
    assert final.values["stage"] == "Negotiation"
    assert final.values["name"] == "Renamed"
    assert versions[-1].cause == newer.key


def test_extend_versions_closes_last_and_appends() -> None:
    prefix = build_versions([created(0, amount="1", currency="USD")], RULES)
    out = extend_versions(prefix[-1], [updated(5, amount="2"), updated(9, amount="3")], RULES)
    assert [(v.number, v.valid_from, v.valid_to) for v in out] == [
        (1, at(0), at(5)),
        (2, at(5), at(9)),
        (3, at(9), None),
    ]
    assert out[0].state == prefix[-1].state
    assert out[-1].state.values["amount"] == "3"


def test_extend_versions_with_nothing_new() -> None:
    last = build_versions([created(0)], RULES)[-1]
    assert extend_versions(last, [], RULES) == []
    assert extend_versions(None, [], RULES) == []


# --- properties -------------------------------------------------------------------------

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.sampled_from(["Alpha", "Beta", "Gamma"]),
    "owner_id": st.sampled_from(["rep-1", "rep-2"]),
    "amount": st.sampled_from(["1", "2.50", "300.00"]),
    "currency": st.sampled_from(["USD", "EUR"]),
    "stage": st.sampled_from(["Discovery", "Closed Won", "closed_lost", "Negotiation"]),
    "status": st.sampled_from(["open", "won", "lost"]),
    "close_date": st.sampled_from(["2024-03-31", "2024-06-30"]),
    "splits": st.sampled_from([[{"rep_id": "rep-1", "percent": "100", "role": "owner"}], []]),
    "properties": st.dictionaries(st.sampled_from(["p", "q", "r"]), st.integers(0, 3), max_size=3),
}


@st.composite
def deal_changes(draw: st.DrawFn, min_size: int = 0) -> list[Change]:
    count = draw(st.integers(min_size, 6))
    out: list[Change] = []
    for index in range(count):
        event_type = draw(st.sampled_from([DEAL_CREATED, DEAL_UPDATED, DEAL_DELETED]))
        fields = (
            {}
            if event_type == DEAL_DELETED
            else draw(st.fixed_dictionaries({}, optional=FIELD_VALUES))
        )
        key = OrderKey.of(
            time=at(draw(st.integers(0, 3))),  # few distinct times: ties are common
            sequence=draw(st.none() | st.integers(0, 2)),
            source=draw(st.sampled_from(["crm-a", "crm-b"])),
            event_id=f"evt-{index}",  # (source, id) is unique per event
        )
        out.append(Change(key=key, deal_id="deal-1", event_type=event_type, fields=fields))
    return out


def summary(versions: list[Version]) -> list[tuple[int, datetime, datetime | None, DealState]]:
    return [(v.number, v.valid_from, v.valid_to, v.state) for v in versions]


@settings(max_examples=30)
@given(st.data())
def test_build_versions_independent_of_arrival_order(data: st.DataObject) -> None:
    changes = data.draw(deal_changes())
    shuffled = data.draw(st.permutations(changes))
    first = build_versions(changes, RULES)
    second = build_versions(shuffled, RULES)
    assert summary(first) == summary(second)
    assert [v.cause for v in first] == [v.cause for v in second]
    assert len(first) == len(changes)
    if first:
        assert first[-1].state == second[-1].state
        assert first[-1].valid_to is None
        assert [v.number for v in first] == list(range(1, len(changes) + 1))
        for earlier, later in pairwise(first):
            assert earlier.valid_to == later.valid_from
            assert earlier.cause < later.cause


@settings(max_examples=30)
@given(st.data())
def test_extend_matches_full_rebuild(data: st.DataObject) -> None:
    changes = data.draw(deal_changes(min_size=1))
    ordered = sorted(changes, key=lambda c: c.key)
    split = data.draw(st.integers(1, len(ordered)))
    prefix = data.draw(st.permutations(ordered[:split]))
    rest = ordered[split:]
    full = build_versions(changes, RULES)
    extended = extend_versions(build_versions(prefix, RULES)[-1], rest, RULES)
    if not rest:
        assert extended == []
        return
    assert summary(extended) == summary(full[split - 1 :])
    assert extended[0].valid_to == rest[0].key.time
    assert [v.cause for v in extended] == [v.cause for v in full[split - 1 :]]


def _expected_final(changes: list[Change]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Independent model: each field takes the value of the greatest key that set it."""
    values: dict[str, tuple[OrderKey, Any]] = {}
    props: dict[str, tuple[OrderKey, Any]] = {}
    lifecycle: tuple[OrderKey, bool] | None = None
    status_source: Change | None = None
    for c in changes:
        if c.event_type in (DEAL_CREATED, DEAL_DELETED) and (
            lifecycle is None or c.key > lifecycle[0]
        ):
            lifecycle = (c.key, c.event_type == DEAL_DELETED)
        for name, value in c.fields.items():
            if name == "properties":
                for k, v in (value or {}).items():
                    if k not in props or c.key > props[k][0]:
                        props[k] = (c.key, v)
            elif name not in values or c.key > values[name][0]:
                values[name] = (c.key, value)
        if ("stage" in c.fields or "status" in c.fields) and (
            status_source is None or c.key > status_source.key
        ):
            status_source = c
    final = {name: kv[1] for name, kv in values.items()}
    if all(c.event_type == DEAL_DELETED for c in changes):
        pass  # a delete sets no field, not even status
    elif status_source is None:
        final["status"] = "open"
    elif "status" in status_source.fields:
        final["status"] = status_source.fields["status"]
    else:
        final["status"] = RULES.status_for(final.get("stage"))
    deleted_flag = lifecycle[1] if lifecycle else False
    return final, {k: kv[1] for k, kv in props.items()}, deleted_flag


@settings(max_examples=30)
@given(deal_changes(min_size=1))
def test_final_state_takes_each_field_from_greatest_key(changes: list[Change]) -> None:
    final = build_versions(changes, RULES)[-1].state
    values, properties, deleted_flag = _expected_final(changes)
    assert final.values == values
    assert final.properties == properties
    assert final.deleted is deleted_flag


def test_a_merged_deletion_records_where_the_deal_went() -> None:
    from datetime import UTC, datetime

    from services.forecast_worker.deals.projection import (
        DEAL_CREATED,
        DEAL_DELETED,
        Change,
        StageRules,
        fold,
    )
    from shared.ordering import OrderKey

    rules = StageRules.of(["won"], ["lost"])
    t = datetime(2026, 1, 1, tzinfo=UTC)
    created = Change(
        OrderKey.of(time=t, sequence=None, source="s", event_id="1"),
        "d",
        DEAL_CREATED,
        {"name": "n", "properties": {"a": 1}},
    )
    merged = Change(
        OrderKey.of(time=t, sequence=1, source="s", event_id="2"),
        "d",
        DEAL_DELETED,
        {"properties": {"merged_into": "d2"}},
    )
    state = fold(fold(None, created, rules), merged, rules)
    assert state.deleted is True
    assert state.properties == {"a": 1, "merged_into": "d2"}
    assert state.values["name"] == "n"


def test_a_cancellation_is_a_version_of_a_deal_that_stays_won() -> None:
    """`deal.cancelled` as the handler turns it into a change: its data under the
    `cancellation` property, the won deal's values untouched."""
    event = validate_event(
        {
            "specversion": "1.0",
            "id": "x1",
            "source": "app://billing",
            "type": DEAL_CANCELLED,
            "time": at(10).isoformat(),
            "data": {"deal_id": "deal-1", "cancelled_at": at(9).isoformat(), "reason": "churn"},
        }
    )
    versions = build_versions(
        [created(0, stage="Closed Won", amount="500"), to_change(event)], RULES
    )
    won, cancelled = (v.state for v in versions)
    assert cancelled.values == won.values
    assert cancelled.values["status"] == "won"
    assert cancelled.properties["cancellation"] == {
        "cancelled_at": "2024-01-01T00:09:00Z",
        "reason": "churn",
        "contract_end": None,
    }
    assert versions[1].valid_from == at(10)
