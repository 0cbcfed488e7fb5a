"""The snapshot schedule: which slots are due between two instants, and a backfill's days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.snapshots.schedule import (
    Slot,
    caught_up,
    due_slots,
    range_count,
    range_instants,
)
from shared.periods import PeriodKind

QUARTER = [PeriodKind.QUARTER]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def named(slots: list[Slot]) -> list[tuple[str, str, str]]:
    return [(s.as_of.isoformat()[:16], s.kind, s.period.label) for s in slots]


def test_weekly_and_the_quarter_end() -> None:
    slots = due_slots(
        at("2026-09-20T12:00"), at("2026-10-06"), weekday=0, kinds=QUARTER, fiscal_start_month=1
    )
    assert named(slots) == [
        ("2026-09-21T00:00", "weekly", "2026-Q3"),
        ("2026-09-28T00:00", "weekly", "2026-Q3"),
        ("2026-10-01T00:00", "period_end", "2026-Q3"),
        ("2026-10-05T00:00", "weekly", "2026-Q4"),
    ]


def test_both_ends_of_the_window() -> None:
    """(since, now]: a slot at `since` was the previous step's, one at `now` is due."""
    monday = at("2026-11-02")
    assert due_slots(monday, monday, weekday=0, kinds=QUARTER, fiscal_start_month=1) == []
    slots = due_slots(
        monday - timedelta(seconds=1), monday, weekday=0, kinds=QUARTER, fiscal_start_month=1
    )
    assert named(slots) == [("2026-11-02T00:00", "weekly", "2026-Q4")]


def test_a_monday_that_starts_a_quarter_has_both_slots() -> None:
    slots = due_slots(
        at("2027-03-31"), at("2027-04-01T05:00"), weekday=3, kinds=QUARTER, fiscal_start_month=1
    )
    assert named(slots) == [
        ("2027-04-01T00:00", "period_end", "2027-Q1"),
        ("2027-04-01T00:00", "weekly", "2027-Q2"),
    ]


def test_fiscal_calendar_and_several_kinds() -> None:
    """With a February fiscal start, January 2026 ends FY2026 and its 2026-Q4."""
    slots = due_slots(
        at("2026-01-31"),
        at("2026-02-01T01:00"),
        weekday=6,
        kinds=[PeriodKind.MONTH, PeriodKind.QUARTER, PeriodKind.YEAR],
        fiscal_start_month=2,
    )
    assert named(slots) == [
        ("2026-02-01T00:00", "period_end", "FY2026"),
        ("2026-02-01T00:00", "period_end", "2026-Q4"),
        ("2026-02-01T00:00", "period_end", "2026-01"),
        ("2026-02-01T00:00", "weekly", "2026-02"),
        ("2026-02-01T00:00", "weekly", "2027-Q1"),
        ("2026-02-01T00:00", "weekly", "FY2027"),
    ]


instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@given(instants, st.integers(0, 200), st.integers(0, 200), st.integers(0, 6))
def test_steps_take_every_slot_exactly_once(
    start: datetime, first_hours: int, second_hours: int, weekday: int
) -> None:
    """A scheduler stepping at any instants names each slot once: two consecutive windows
    give the slots of the window they span, none twice, none lost."""
    middle = start + timedelta(hours=first_hours)
    end = middle + timedelta(hours=second_hours)
    steps = [
        *due_slots(start, middle, weekday=weekday, kinds=QUARTER, fiscal_start_month=1),
        *due_slots(middle, end, weekday=weekday, kinds=QUARTER, fiscal_start_month=1),
    ]
    whole = due_slots(start, end, weekday=weekday, kinds=QUARTER, fiscal_start_month=1)
    assert steps == whole
    assert len(set(steps)) == len(steps)
    for slot in whole:
        assert start < slot.as_of <= end
        assert (slot.as_of.hour, slot.as_of.minute, slot.as_of.second) == (0, 0, 0)
        if slot.kind == "weekly":
            assert slot.as_of.weekday() == weekday
            assert slot.period.contains(slot.as_of.date())
        else:
            assert slot.period.end == slot.as_of.date()


@given(instants, st.integers(1, 60))
def test_a_week_has_one_weekly_slot(start: datetime, weeks: int) -> None:
    slots = due_slots(
        start, start + timedelta(weeks=weeks), weekday=2, kinds=QUARTER, fiscal_start_month=1
    )
    assert sum(s.kind == "weekly" for s in slots) == weeks


def test_backfill_instants() -> None:
    weekly = range_instants(date(2026, 11, 1), date(2026, 11, 16), every="week", weekday=0)
    assert weekly == [at("2026-11-02"), at("2026-11-09"), at("2026-11-16")]
    daily = range_instants(date(2026, 11, 1), date(2026, 11, 3), every="day", weekday=0)
    assert daily == [at("2026-11-01"), at("2026-11-02"), at("2026-11-03")]
    assert range_instants(date(2026, 11, 3), date(2026, 11, 1), every="day", weekday=0) == []


days = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(days, st.integers(-3, 800), st.sampled_from(["day", "week"]), st.integers(0, 6))
def test_a_range_is_counted_as_it_is_listed(
    first: date, length: int, every: Literal["day", "week"], weekday: int
) -> None:
    last = first + timedelta(days=length)
    listed = range_instants(first, last, every=every, weekday=weekday)
    assert range_count(first, last, every=every, weekday=weekday) == len(listed)


def test_caught_up_once_every_partition_with_records_is_applied_to_its_end() -> None:
    ends = {("deal", 0): 5, ("deal", 1): 0, ("reference", 0): 2}
    assert caught_up(ends, {("deal", 0): 5, ("reference", 0): 2})
    assert caught_up(ends, {("deal", 0): 6, ("reference", 0): 2}), "read more since the ends"
    assert not caught_up(ends, {("deal", 0): 4, ("reference", 0): 2}), "one record to go"
    assert not caught_up(ends, {("deal", 0): 5}), "a partition never read"
    assert caught_up({("deal", 0): 0}, {}), "nothing to read"
