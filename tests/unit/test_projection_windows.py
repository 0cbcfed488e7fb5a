"""Which past periods the projection learns from, and where in each it looks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.forecast_worker.projection.windows import elapsed, past_windows
from shared.periods import midnight, parse_period

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def test_past_quarters_are_seen_with_the_same_time_left() -> None:
    now = datetime(2026, 8, 16, 12, tzinfo=UTC)
    chosen = past_windows(parse_period("2026-Q3"), now, 3, LONG_AGO)
    assert [p.label for p, _ in chosen] == ["2026-Q2", "2026-Q1", "2025-Q4"]
    assert [w.at for _, w in chosen] == [
        datetime(2026, 5, 16, 12, tzinfo=UTC),
        datetime(2026, 2, 14, 12, tzinfo=UTC),
        datetime(2025, 11, 16, 12, tzinfo=UTC),
    ], "45.5 days before each end: 2026-10-01, 07-01, 04-01, 01-01"
    _, latest = chosen[0]
    assert (latest.closed_at, latest.day, latest.end_day) == (
        datetime(2026, 7, 1, tzinfo=UTC),
        date(2026, 5, 16),
        date(2026, 6, 30),
    )


def test_a_shorter_past_month_is_seen_before_its_end() -> None:
    late = datetime(2026, 3, 29, 12, tzinfo=UTC)
    ((february, window),) = past_windows(parse_period("2026-03"), late, 1, LONG_AGO)
    assert february.label == "2026-02"
    assert window.at == datetime(2026, 2, 26, 12, tzinfo=UTC), (
        "2.5 days left in March: February 2.5 days before its end, not at its close"
    )
    assert window.at < window.closed_at
    last = datetime(2026, 3, 31, 23, tzinfo=UTC)
    ((_, at_the_last_hour),) = past_windows(parse_period("2026-03"), last, 1, LONG_AGO)
    assert at_the_last_hour.at == datetime(2026, 2, 28, 23, tzinfo=UTC)


def test_a_longer_past_month_is_seen_no_earlier_than_its_start() -> None:
    early = datetime(2026, 2, 1, 12, tzinfo=UTC)
    ((january, window),) = past_windows(parse_period("2026-02"), early, 1, LONG_AGO)
    assert january.label == "2026-01"
    assert window.at == datetime(2026, 1, 4, 12, tzinfo=UTC), "27.5 days before 02-01"
    ahead = datetime(2024, 11, 22, tzinfo=UTC)
    ((october, not_begun),) = past_windows(parse_period("2026-02"), ahead, 1, LONG_AGO)
    assert (october.label, not_begun.at) == ("2024-10", midnight(date(2024, 10, 4))), (
        "a period not begun has all its 28 days left"
    )
    ((_, shorter),) = past_windows(
        parse_period("2026-03"), datetime(2026, 3, 1, tzinfo=UTC), 1, LONG_AGO
    )
    assert shorter.at == midnight(date(2026, 2, 1)), "31 days left: February from its start"


def test_only_periods_ended_by_the_instant_and_after_the_first_deal_are_used() -> None:
    future = parse_period("2027-Q2")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert elapsed(future, now) == timedelta(0)
    first_deal = datetime(2026, 2, 1, tzinfo=UTC)
    chosen = past_windows(future, now, 4, first_deal)
    assert [p.label for p, _ in chosen] == ["2026-Q3", "2026-Q2"], (
        "2026-Q4 and 2027-Q1 have not ended; 2026-Q1's start is before the first deal"
    )
    assert past_windows(future, now, 4, None) == []
    assert past_windows(future, now, 4, now + timedelta(seconds=1)) == []


def test_an_instant_after_the_period_sees_past_periods_at_their_end() -> None:
    span = parse_period("FY2025")
    chosen = past_windows(span, datetime(2026, 6, 1, tzinfo=UTC), 1, LONG_AGO)
    assert [(p.label, w.at) for p, w in chosen] == [("FY2024", datetime(2025, 1, 1, tzinfo=UTC))]


def test_a_period_far_ahead_learns_from_the_periods_just_before_the_instant() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    chosen = past_windows(parse_period("2900-05"), now, 2, LONG_AGO)
    assert [p.label for p, _ in chosen] == ["2026-10", "2026-09"]
    assert [w.at for _, w in chosen] == [
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 9, 1, tzinfo=UTC),
    ], "the instant is before the period: its start, so each past period's start"


def test_the_first_period_of_the_calendar_has_none_before_it() -> None:
    start = datetime(1, 1, 1, tzinfo=UTC)
    assert past_windows(parse_period("0001-01"), start + timedelta(days=40), 3, start) == []
