"""The fiscal calendar: labels, boundaries, and that periods tile time without gaps."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.periods import (
    ACCEPTED_FORMS,
    Period,
    PeriodKind,
    fiscal_year_of,
    parse_period,
    period_containing,
    periods_between,
    periods_from_to,
)

DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
START_MONTHS = st.integers(min_value=1, max_value=12)
KINDS = st.sampled_from(list(PeriodKind))


def test_a_fiscal_year_is_named_by_the_calendar_year_it_ends_in() -> None:
    fy = parse_period("FY2026", 2)
    assert (fy.start, fy.end, fy.kind) == (date(2025, 2, 1), date(2026, 2, 1), PeriodKind.YEAR)
    calendar = parse_period("FY2026")
    assert (calendar.start, calendar.end) == (date(2026, 1, 1), date(2027, 1, 1))
    assert fiscal_year_of(date(2025, 2, 1), 2) == 2026
    assert fiscal_year_of(date(2025, 1, 31), 2) == 2025


def test_quarters_are_numbered_from_the_fiscal_start() -> None:
    assert parse_period("2026-Q1", 2).start == date(2025, 2, 1)
    q4 = parse_period("2026-Q4", 2)
    assert (q4.start, q4.end) == (date(2025, 11, 1), date(2026, 2, 1))
    assert parse_period("2026-q4") == Period(
        "2026-Q4", date(2026, 10, 1), date(2027, 1, 1), PeriodKind.QUARTER, 1
    )
    assert period_containing(date(2026, 1, 15), PeriodKind.QUARTER, 11).label == "2026-Q1"


def test_a_month_label_is_a_calendar_month_whatever_the_fiscal_start() -> None:
    month = parse_period("2026-11", 7)
    assert (month.start, month.end, month.kind) == (
        date(2026, 11, 1),
        date(2026, 12, 1),
        PeriodKind.MONTH,
    )
    assert parse_period("2026-12").end == date(2027, 1, 1)


@pytest.mark.parametrize("label", ["", "2026", "2026-13", "2026-Q5", "FY26", "Q4-2026", "2026-1"])
def test_a_label_that_does_not_parse_names_itself_and_the_accepted_forms(label: str) -> None:
    with pytest.raises(ValueError, match="is not a period") as raised:
        parse_period(label)
    message = str(raised.value)
    assert repr(label) in message
    assert ACCEPTED_FORMS in message
    assert all(form in ACCEPTED_FORMS for form in ("'FY2026'", "'2026-Q4'", "'2026-11'"))


def test_a_fiscal_start_month_outside_the_year_is_refused() -> None:
    with pytest.raises(ValueError, match="13 is not a month"):
        parse_period("FY2026", 13)


def test_a_period_past_the_supported_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="'FY0000' is outside"):
        parse_period("FY0000", 2)


def test_periods_between_lists_each_period_once_inclusive() -> None:
    labels = [
        p.label for p in periods_between(date(2026, 1, 31), date(2026, 4, 1), PeriodKind.MONTH)
    ]
    assert labels == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert periods_between(date(2026, 5, 1), date(2026, 4, 1), PeriodKind.MONTH) == []
    quarters = periods_between(date(2025, 12, 1), date(2026, 2, 1), PeriodKind.QUARTER, 2)
    assert [q.label for q in quarters] == ["2026-Q4", "2027-Q1"]


def test_next_and_previous_cross_fiscal_years() -> None:
    q4 = parse_period("2026-Q4", 2)
    assert q4.next().label == "2027-Q1"
    assert q4.next().previous() == q4
    assert parse_period("2026-01").previous().label == "2025-12"


@given(DAYS, KINDS, START_MONTHS)
def test_every_day_belongs_to_exactly_one_period_of_each_kind(
    day: date, kind: PeriodKind, start_month: int
) -> None:
    period = period_containing(day, kind, start_month)
    assert period.contains(day)
    assert not period.previous().contains(day)
    assert not period.next().contains(day)
    assert period.previous().end == period.start
    assert period.next().start == period.end


@given(DAYS, KINDS, START_MONTHS)
def test_a_label_parses_back_to_its_period(day: date, kind: PeriodKind, start_month: int) -> None:
    period = period_containing(day, kind, start_month)
    assert parse_period(period.label, start_month) == period


@given(DAYS, START_MONTHS)
def test_a_quarter_is_the_union_of_its_three_months(day: date, start_month: int) -> None:
    quarter = period_containing(day, PeriodKind.QUARTER, start_month)
    months = periods_between(quarter.start, quarter.end - timedelta(days=1), PeriodKind.MONTH)
    assert len(months) == 3
    assert (months[0].start, months[-1].end) == (quarter.start, quarter.end)


@given(DAYS, START_MONTHS)
def test_a_fiscal_year_is_the_union_of_its_four_quarters(day: date, start_month: int) -> None:
    year = period_containing(day, PeriodKind.YEAR, start_month)
    last = year.end - timedelta(days=1)
    quarters = periods_between(year.start, last, PeriodKind.QUARTER, start_month)
    assert [q.label for q in quarters] == [f"{year.label[2:]}-Q{n}" for n in range(1, 5)]
    assert (quarters[0].start, quarters[-1].end) == (year.start, year.end)


def test_periods_from_to_counts_without_listing() -> None:
    def count(first: str, last: str) -> int:
        return periods_from_to(parse_period(first, 2), parse_period(last, 2))

    assert count("2026-01", "2026-01") == 1
    assert count("2020-01", "2029-12") == 120
    assert count("2026-Q1", "2026-Q4") == 4, "fiscal quarters from February"
    assert count("2026-Q4", "2027-Q1") == 2
    assert count("FY2000", "FY2119") == 120
    assert count("2026-02", "2026-01") == 0
    for first, last in (("2024-Q3", "2031-Q2"), ("FY2001", "FY2020"), ("2019-11", "2026-02")):
        a, b = parse_period(first, 2), parse_period(last, 2)
        assert periods_from_to(a, b) == len(periods_between(a.start, b.start, a.kind, 2))
