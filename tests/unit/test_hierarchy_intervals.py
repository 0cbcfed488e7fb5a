"""The hierarchy's pure part: intervals rebuilt from upserts, and the parent-cycle check."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.hierarchy.handler import to_upsert
from services.forecast_worker.hierarchy.intervals import (
    Interval,
    Upsert,
    build_intervals,
    find_cycle,
)
from shared.events import validate_event
from shared.ordering import OrderKey
from tests.support.events import event

T = datetime(2026, 1, 1, tzinfo=UTC)
D = date(2026, 1, 1)


def upsert(
    day: date, team: str, *, at: int = 0, event_id: str | None = None, entity: str = "r1"
) -> Upsert:
    return Upsert(
        entity_id=entity,
        effective=day,
        key=OrderKey(T + timedelta(seconds=at), -1, "test://h", event_id or f"{day}-{team}-{at}"),
        fields={"team_id": team},
    )


def spans(intervals: list[Interval]) -> list[tuple[date, date | None, Any]]:
    return [(i.valid_from, i.valid_to, i.fields["team_id"]) for i in intervals]


def test_each_effective_date_starts_an_interval_that_ends_where_the_next_begins() -> None:
    built = build_intervals([upsert(D, "east"), upsert(date(2026, 4, 1), "west")])
    assert spans(built) == [(D, date(2026, 4, 1), "east"), (date(2026, 4, 1), None, "west")]


def test_a_late_event_for_an_earlier_date_lands_in_its_place_without_restating_later() -> None:
    on_time = [upsert(D, "east", at=0), upsert(date(2026, 6, 1), "west", at=1)]
    late = upsert(date(2026, 3, 1), "north", at=9)
    assert spans(build_intervals([*on_time, late])) == [
        (D, date(2026, 3, 1), "east"),
        (date(2026, 3, 1), date(2026, 6, 1), "north"),
        (date(2026, 6, 1), None, "west"),
    ]


def test_the_same_effective_date_is_settled_by_the_ordering_rule() -> None:
    newer, older = upsert(D, "west", at=5), upsert(D, "east", at=1)
    assert spans(build_intervals([newer, older])) == [(D, None, "west")]


def test_a_field_an_event_does_not_carry_keeps_its_value() -> None:
    v2 = Upsert("t1", D, OrderKey(T, -1, "s", "a"), {"name": "East", "region": "EMEA"})
    v1 = Upsert("t1", date(2026, 2, 1), OrderKey(T, -1, "s", "b"), {"name": "East 2"})
    later = build_intervals([v1, v2])[-1]
    assert later.fields == {"name": "East 2", "region": "EMEA"}


def test_a_v1_team_event_carries_no_region_and_a_v2_one_does() -> None:
    common = {"team_id": "t1", "name": "East"}
    v1 = event("com.salesops.team.upserted.v1", common, time="2026-01-01T10:00:00Z")
    v2 = event(
        "com.salesops.team.upserted.v2",
        {**common, "region": "EMEA", "effective_from": "2025-12-01"},
        time="2026-01-01T10:00:00Z",
    )
    (kind1, up1), (kind2, up2) = (to_upsert(validate_event(e)) for e in (v1, v2))
    assert (kind1, kind2) == ("team", "team")
    assert "region" not in up1.fields
    assert up2.fields["region"] == "EMEA"
    assert up1.effective == D, "the event time's day when effective_from is absent"
    assert up2.effective == date(2025, 12, 1)


def test_one_entity_at_a_time() -> None:
    with pytest.raises(ValueError, match="one entity"):
        build_intervals([upsert(D, "a"), upsert(D, "b", entity="r2")])


days = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))
upserts = st.lists(
    st.builds(
        upsert,
        days,
        st.sampled_from(["east", "west", "north"]),
        at=st.integers(0, 3),
        event_id=st.uuids().map(str),
    ),
    min_size=1,
    max_size=12,
)


@given(upserts, st.randoms(use_true_random=False))
def test_intervals_do_not_depend_on_arrival_order(events: list[Upsert], rnd: Any) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert build_intervals(shuffled) == build_intervals(events)


@given(upserts, st.data())
def test_a_redelivery_changes_nothing(events: list[Upsert], data: st.DataObject) -> None:
    again = data.draw(st.lists(st.sampled_from(events), min_size=1))
    assert build_intervals([*events, *again]) == build_intervals(events)


@given(upserts)
def test_intervals_tile_from_the_first_effective_date_without_overlap(events: list[Upsert]) -> None:
    built = build_intervals(events)
    assert built[0].valid_from == min(e.effective for e in events)
    assert built[-1].valid_to is None
    for before, after in itertools.pairwise(built):
        assert before.valid_to == after.valid_from
        assert before.valid_from < before.valid_to
    assert {i.valid_from for i in built} == {e.effective for e in events}


@given(upserts, days)
def test_each_day_from_the_first_is_covered_by_exactly_one_interval(
    events: list[Upsert], day: date
) -> None:
    built = build_intervals(events)
    covering = [i for i in built if i.covers(day)]
    assert len(covering) == (1 if day >= built[0].valid_from else 0)


def team(team_id: str, parent: str | None, start: date, end: date | None = None) -> Interval:
    return Interval(team_id, start, end, {"parent_team_id": parent}, OrderKey(T, -1, "s", team_id))


def test_a_parent_chain_that_returns_names_the_path_and_the_day() -> None:
    teams = [
        team("t1", "t2", D),
        team("t2", None, D, date(2026, 3, 1)),
        team("t2", "t1", date(2026, 3, 1)),
    ]
    cycle = find_cycle(teams, "t2")
    assert cycle is not None
    assert str(cycle) == "team t2 -> t1 -> t2 forms a cycle as of 2026-03-01"
    assert cycle.path == ["t2", "t1", "t2"]


def test_a_team_that_is_its_own_parent_is_a_cycle() -> None:
    cycle = find_cycle([team("t1", "t1", D)], "t1")
    assert cycle is not None
    assert cycle.path == ["t1", "t1"]


def test_a_move_that_never_overlaps_in_time_is_no_cycle() -> None:
    """t1 under t2 until March, t2 under t1 from March: never both on the same day."""
    teams = [
        team("t1", "t2", D, date(2026, 3, 1)),
        team("t1", None, date(2026, 3, 1)),
        team("t2", None, D, date(2026, 3, 1)),
        team("t2", "t1", date(2026, 3, 1)),
    ]
    assert find_cycle(teams, "t1") is None
    assert find_cycle(teams, "t2") is None


def test_a_deep_chain_without_a_cycle_is_fine() -> None:
    teams = [team(f"t{n}", f"t{n + 1}" if n < 9 else None, D) for n in range(10)]
    assert find_cycle(teams, "t0") is None
