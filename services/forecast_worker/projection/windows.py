"""Which past periods the projection learns from, and the instant in each. Pure.

The point of the period is the time elapsed since its start at the instant projected
from, clamped to the period (before it starts: its start; after it ends: its end). Each
past period is seen with the same time left before its end as the point leaves before the
requested period's end, but no earlier than its own start: what closes in the last ten
days of a quarter is learnt from the last ten days of the quarters before, whatever their
lengths, so a 28-day February is never looked at once it has ended when March is
projected on its 29th. At or after the requested period's end, each is seen at its end.
Only periods that had ended by the instant are learnt from, since an `as_of` answer must
not know what happened after it; and only those in which some deal existed at their
point, since counting a period before the first deal would teach that nothing ever closes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.forecast_worker.projection.repository import PastWindow
from shared.periods import Period, hierarchy_day, midnight, period_containing

MAX_LOOKBACK = 12


def _length(period: Period) -> timedelta:
    return midnight(period.end) - midnight(period.start)


def elapsed(period: Period, instant: datetime) -> timedelta:
    return min(max(instant - midnight(period.start), timedelta(0)), _length(period))


def past_windows(
    period: Period, instant: datetime, lookback: int, first_data: datetime | None
) -> list[tuple[Period, PastWindow]]:
    """Up to `lookback` periods of the same kind before `period` that ended by `instant`,
    latest first, each with its window; none when no deal existed by `instant`."""
    if first_data is None or first_data > instant:
        return []
    remaining = _length(period) - elapsed(period, instant)
    past: Period | None = _before(period)
    if past is not None and midnight(past.end) > instant:
        past = _before(period_containing(instant.date(), period.kind, period.fiscal_start_month))
    out = []
    for index in range(lookback):
        if past is None:
            break
        at = max(midnight(past.start), midnight(past.end) - remaining)
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
