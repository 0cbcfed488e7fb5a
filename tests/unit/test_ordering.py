"""`OrderKey`: CRM time, then sequence, then source, then event id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.ordering import OrderKey, is_newer

T = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def key(
    time: datetime = T, sequence: int | None = None, source: str = "crm", event_id: str = "e"
) -> OrderKey:
    return OrderKey.of(time=time, sequence=sequence, source=source, event_id=event_id)


def test_of_maps_missing_sequence_to_minus_one() -> None:
    assert key().sequence == -1
    assert key(sequence=0).sequence == 0
    assert key(sequence=5) == OrderKey(T, 5, "crm", "e")


def test_time_decides_first() -> None:
    early = key(time=T, sequence=99, source="z", event_id="z")
    late = key(time=T + timedelta(microseconds=1), sequence=0, source="a", event_id="a")
    assert early < late


def test_equal_instants_in_other_offsets_tie_on_time() -> None:
    plus_two = T.astimezone(timezone(timedelta(hours=2)))
    assert key(time=plus_two, sequence=1) > key(time=T, sequence=0)
    assert key(time=plus_two) == key(time=T)


def test_sequence_breaks_time_ties() -> None:
    assert key(sequence=1, source="z", event_id="z") < key(sequence=2, source="a", event_id="a")


def test_missing_sequence_sorts_before_zero() -> None:
    assert key(sequence=None, source="z", event_id="z") < key(sequence=0, source="a", event_id="a")


def test_source_then_event_id_break_remaining_ties() -> None:
    assert key(sequence=1, source="a", event_id="z") < key(sequence=1, source="b", event_id="a")
    assert key(sequence=1, source="a", event_id="a") < key(sequence=1, source="a", event_id="b")


def test_sorting_a_shuffled_list() -> None:
    expected = [
        key(sequence=None, event_id="x"),
        key(sequence=0, source="a", event_id="y"),
        key(sequence=0, source="b", event_id="a"),
        key(sequence=3, source="a", event_id="a"),
        key(time=T + timedelta(seconds=1), sequence=None, event_id="a"),
    ]
    shuffled = [expected[3], expected[0], expected[4], expected[2], expected[1]]
    assert sorted(shuffled) == expected


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [
        (key(sequence=2), None, True),
        (key(sequence=2), key(sequence=1), True),
        (key(sequence=1), key(sequence=2), False),
        (key(sequence=1), key(sequence=1), False),
        (key(time=T + timedelta(seconds=1)), key(sequence=100), True),
    ],
)
def test_is_newer(candidate: OrderKey, current: OrderKey | None, newer: bool) -> None:
    assert is_newer(candidate, current) is newer
