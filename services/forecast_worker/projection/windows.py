"""Which past periods the projection learns from, and the instant in each. Pure.

The point of the period is the time elapsed since its start at the instant projected
from, clamped to the period (before it starts: its start; after it ends: its end). Each
past period is seen at the same elapsed time from its own start, clamped to its own
length (day 30 of a 28-day month is its end), or at its end when the instant is at or
after the requested period's end (a leap year is a day longer). Only periods that had
ended by the instant are learnt from, since an `as_of` answer must not know what happened
after it; and only those in which some deal existed at their point, since counting a
period before the first deal would teach that nothing ever closes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from services.forecast_worker.periods import Period, period_containing
from services.forecast_worker.projection.repository import PastWindow

MAX_LOOKBACK = 12


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _length(period: Period) -> timedelta:
    return midnight(period.end) - midnight(period.start)


def elapsed(period: Period, instant: datetime) -> timedelta:
    return min(max(instant - midnight(period.start), timedelta(0)), _length(period))


def hierarchy_day(period: Period, instant: datetime) -> date:
    """The roll-up's day: the instant's date, but no later than the period's last day."""
    return min(instant.date(), period.end - timedelta(days=1))


def past_windows(
    period: Period, instant: datetime, lookback: int, first_data: datetime | None
) -> list[tuple[Period, PastWindow]]:
    """Up to `lookback` periods of the same kind before `period` that ended by `instant`,
    latest first, each with its window; none when no deal existed by `instant`."""
    if first_data is None or first_data > instant:
        return []
    offset = elapsed(period, instant)
    at_end = offset == _length(period)
    past: Period | None = _before(period)
    if past is not None and midnight(past.end) > instant:
        past = _before(period_containing(instant.date(), period.kind, period.fiscal_start_month))
    out = []
    for index in range(lookback):
        if past is None:
            break
        at = midnight(past.start) + (_length(past) if at_end else min(offset, _length(past)))
        if first_data <= at:
            window = PastWindow(
                index=index,
                start=past.start,
                end=past.end,
                at=at,
                closed_at=midnight(past.end),
                day=hierarchy_day(past, at),
                end_day=past.end - timedelta(days=1),
            )
            out.append((past, window))
        past = _before(past)
    return out


def _before(period: Period) -> Period | None:
    """The previous period; None before the first the calendar has (year 1)."""
    try:
        return period.previous()
    except (ValueError, OverflowError):
        return None
