"""When snapshots are due: pure, no I/O.

Two kinds of slot, both at 00:00 UTC:
- `weekly`: every configured weekday (Monday by default), a snapshot of the period of each
  configured kind that contains that instant;
- `period_end`: the first instant after a period (its exclusive `end`), a snapshot of the
  period that just ended, as it stood when it closed.

A scheduler asks for the slots in (since, now - settle] and takes the ones not taken yet;
since the slots are a function of the instant and the calendar only, every replica and
every restart names the same ones, and the unique slot key lets one of them win. It takes
them only once the consumer has `caught_up` with what the broker held after their
instant, because a snapshot is never recomputed: one frozen from a projection still
working through a backlog would stay wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from shared.periods import Period, PeriodKind, midnight, period_containing

SlotKind = Literal["weekly", "period_end"]
Every = Literal["week", "day"]
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Slot:
    as_of: datetime
    kind: SlotKind
    period: Period


def _days(since: datetime, now: datetime) -> Iterable[date]:
    """The days whose midnight lies in (since, now]."""
    day = since.astimezone(UTC).date() + ONE_DAY
    while midnight(day) <= now:
        yield day
        day += ONE_DAY


def due_slots(
    since: datetime,
    now: datetime,
    *,
    weekday: int,
    kinds: Iterable[PeriodKind],
    fiscal_start_month: int,
) -> list[Slot]:
    """Every slot with `since < as_of <= now`, ordered by instant, then kind, then period.
    `weekday` is 0 for Monday to 6 for Sunday, as `date.weekday()`."""
    slots = []
    for day in _days(since, now):
        for kind in kinds:
            current = period_containing(day, kind, fiscal_start_month)
            if day.weekday() == weekday:
                slots.append(Slot(midnight(day), "weekly", current))
            if current.start == day:
                slots.append(Slot(midnight(day), "period_end", current.previous()))
    return sorted(slots, key=lambda s: (s.as_of, s.kind, s.period.start, s.period.end))


def caught_up(ends: Mapping[tuple[str, int], int], stored: Mapping[tuple[str, int], int]) -> bool:
    """Whether a consumer whose stored next offsets are `stored` has applied every record
    the broker held when it answered `ends` (per (topic, partition)): an empty partition
    needs nothing, any other a stored offset at least its end."""
    return all(end == 0 or stored.get(tp, 0) >= end for tp, end in ends.items())


def range_count(first: date, last: date, *, every: Every, weekday: int) -> int:
    """How many instants `range_instants` would list, counted without listing them, so a
    request for too many is refused before any work."""
    days = (last - first).days + 1
    if days <= 0:
        return 0
    if every == "day":
        return days
    offset = (weekday - first.weekday()) % 7
    return 0 if offset >= days else (days - 1 - offset) // 7 + 1


def range_instants(first: date, last: date, *, every: Every, weekday: int) -> list[datetime]:
    """The midnights from `first` to `last`, both included, a backfill takes: every day,
    or every configured weekday."""
    days = (date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1))
    return [midnight(d) for d in days if every == "day" or d.weekday() == weekday]
