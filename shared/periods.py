"""The fiscal calendar: periods and their labels, for forecasts and commissions. Pure.

Three kinds of period, each labelled one way:

- `FY2026`, a fiscal year, named by the calendar year in which it ENDS. With the fiscal
  year starting in January (the default) FY2026 is calendar 2026; starting in February it
  is 2025-02-01 .. 2026-01-31.
- `2026-Q4`, a fiscal quarter: quarters are numbered from the fiscal-year start, and the
  year is the fiscal year, so with a February start 2026-Q1 is 2025-02-01 .. 2025-04-30
  and 2026-Q4 is 2025-11-01 .. 2026-01-31.
- `2026-11`, a calendar month, whatever the fiscal start.

A period's `end` is exclusive (the first day of the next one), so ranges chain without
gaps and `start <= day < end` is the test for "in the period".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


ACCEPTED_FORMS = "a fiscal year 'FY2026', a fiscal quarter '2026-Q4' or a calendar month '2026-11'"
_YEAR = re.compile(r"FY(\d{4})", re.IGNORECASE)
_QUARTER = re.compile(r"(\d{4})-Q([1-4])", re.IGNORECASE)
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Period:
    """One period of one fiscal calendar: the start month is part of it because a quarter's
    dates, and the label of the period after it, depend on it."""

    label: str
    start: date
    end: date
    """Exclusive: the first day of the next period of the same kind."""
    kind: PeriodKind
    fiscal_start_month: int = 1

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def next(self) -> Period:
        return period_containing(self.end, self.kind, self.fiscal_start_month)

    def previous(self) -> Period:
        return period_containing(self.start - timedelta(days=1), self.kind, self.fiscal_start_month)


def midnight(day: date) -> datetime:
    """The instant `day` starts, UTC: where a period's bounds, snapshot slots and past
    windows sit on the time line."""
    return datetime.combine(day, time(), tzinfo=UTC)


def hierarchy_day(period: Period, instant: datetime) -> date:
    """The day whose hierarchy groups `period`'s figures at `instant`: the instant's date,
    but no later than the period's last day (a closed period keeps the teams it ended with)."""
    return min(instant.date(), period.end - timedelta(days=1))


def parse_period(label: str, fiscal_start_month: int = 1) -> Period:
    """The period a label names; a ValueError naming the value and the accepted forms
    when it names none (a route answers it as a 422 naming its parameter)."""
    _check_start_month(fiscal_start_month)
    text = label.strip()
    try:
        if match := _YEAR.fullmatch(text):
            return _fiscal_year(int(match[1]), fiscal_start_month)
        if match := _QUARTER.fullmatch(text):
            return _quarter(int(match[1]), int(match[2]), fiscal_start_month)
        if match := _MONTH.fullmatch(text):
            return _month(int(match[1]), int(match[2]), fiscal_start_month)
    except (ValueError, OverflowError):
        raise ValueError(f"period {label!r} is outside the supported calendar") from None
    raise ValueError(f"{label!r} is not a period: expected {ACCEPTED_FORMS}")


def period_containing(day: date, kind: PeriodKind, fiscal_start_month: int = 1) -> Period:
    """The period of `kind` that `day` falls in."""
    _check_start_month(fiscal_start_month)
    if kind is PeriodKind.MONTH:
        return _month(day.year, day.month, fiscal_start_month)
    fiscal_year = fiscal_year_of(day, fiscal_start_month)
    if kind is PeriodKind.YEAR:
        return _fiscal_year(fiscal_year, fiscal_start_month)
    return _quarter(fiscal_year, (day.month - fiscal_start_month) % 12 // 3 + 1, fiscal_start_month)


def periods_between(
    first: date, last: date, kind: PeriodKind, fiscal_start_month: int = 1
) -> list[Period]:
    """Every period of `kind` from the one containing `first` to the one containing `last`,
    both included, in order; empty when `last` is before `first`."""
    if last < first:
        return []
    periods = [period_containing(first, kind, fiscal_start_month)]
    while periods[-1].end <= last:
        periods.append(periods[-1].next())
    return periods


def periods_from_to(first: Period, last: Period) -> int:
    """How many periods of `first`'s kind run from `first` to `last`, both included (0 when
    `last` starts before `first`): counted from the months between them, so a range can be
    bounded before its periods are listed."""
    months = (last.start.year - first.start.year) * 12 + last.start.month - first.start.month
    step = {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[first.kind]
    return max(months // step + 1, 0)


def fiscal_year_of(day: date, fiscal_start_month: int = 1) -> int:
    """The fiscal year `day` belongs to, named by the calendar year in which it ends."""
    if fiscal_start_month > 1 and day.month >= fiscal_start_month:
        return day.year + 1
    return day.year


def _fiscal_year_start(fiscal_year: int, fiscal_start_month: int) -> date:
    return date(fiscal_year - (1 if fiscal_start_month > 1 else 0), fiscal_start_month, 1)


def _fiscal_year(fiscal_year: int, fiscal_start_month: int) -> Period:
    start = _fiscal_year_start(fiscal_year, fiscal_start_month)
    end = _plus_months(start, 12)
    return Period(f"FY{fiscal_year}", start, end, PeriodKind.YEAR, fiscal_start_month)


def _quarter(fiscal_year: int, quarter: int, fiscal_start_month: int) -> Period:
    start = _plus_months(_fiscal_year_start(fiscal_year, fiscal_start_month), 3 * (quarter - 1))
    end = _plus_months(start, 3)
    label = f"{fiscal_year}-Q{quarter}"
    return Period(label, start, end, PeriodKind.QUARTER, fiscal_start_month)


def _month(year: int, month: int, fiscal_start_month: int) -> Period:
    start = date(year, month, 1)
    end = _plus_months(start, 1)
    return Period(f"{year}-{month:02d}", start, end, PeriodKind.MONTH, fiscal_start_month)


def _plus_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _check_start_month(fiscal_start_month: int) -> None:
    if not 1 <= fiscal_start_month <= 12:
        raise ValueError(f"fiscal start month {fiscal_start_month} is not a month (1-12)")
