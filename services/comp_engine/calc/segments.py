"""Segments: the stretches of a period in which one rep is on one plan version. Pure.

A period is computed per segment. When an assignment starts or ends mid-period, or a new
plan version takes effect, the period splits, and each part gets the quota and the target
variable prorated by its days, with attainment counted within it, the way Spiff produces two
statements for a mid-period change. A ramp scales the quota of the rep's first periods on
the assignment.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from operator import attrgetter

from services.comp_engine.calc.inputs import Assignment, FxTable, Inputs, PlanVersion
from shared.periods import (
    Period,
    PeriodKind,
    period_containing,
    periods_between,
    periods_from_to,
)

ZERO = Decimal(0)

_start = attrgetter("start")


@dataclass(frozen=True, slots=True)
class Segment:
    rep_id: str
    period: Period
    start: date
    end: date
    """Exclusive."""
    assignment: Assignment
    version: PlanVersion
    index: int
    """1 for the assignment's first period, 2 for the next ..."""
    proration: Decimal
    """The segment's days over the period's days."""
    quota: Decimal | None
    """In the plan's currency, ramped and prorated; `None` when the rep has none."""
    target_variable: Decimal

    @property
    def currency(self) -> str:
        return self.version.document.currency

    @property
    def payout_currency(self) -> str:
        return self.assignment.payout_currency or self.currency

    @property
    def last_day(self) -> date:
        """The day the segment's own lines (bonuses, minimums, draws) convert at."""
        return self.end - timedelta(days=1)

    def payout_rate(self, fx: FxTable, day: date) -> Decimal:
        """Plan currency -> payout currency on `day` (`MissingRate` if there is none)."""
        return fx.rate(self.currency, self.payout_currency, day)

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def ended(self, today: date) -> bool:
        return self.end <= today


def segments(rep_id: str, inputs: Inputs, until: date) -> list[Segment]:
    """Every segment of `rep_id` that starts before `until`, in time order."""
    found: list[Segment] = []
    for assignment in sorted(inputs.assignments_of(rep_id), key=lambda a: a.start):
        for version, v_start, v_end in _versions(inputs, assignment, assignment.end):
            kind = PeriodKind(version.document.period.value)
            first = period_containing(assignment.start, kind)
            last = min(v_end, until) if v_end else until
            # A period under way runs to its end (its quota is not cut at today), so only
            # which periods are computed depends on `until`.
            for period in periods_between(v_start, last - timedelta(days=1), kind):
                start = max(period.start, v_start)
                end = period.end if v_end is None else min(period.end, v_end)
                if start >= end:
                    continue
                found.append(
                    _segment(rep_id, inputs, assignment, version, period, start, end, first)
                )
    return found


def same_lines_on(rep_id: str, inputs: Inputs, day: date, other: date) -> bool:
    """Whether the rep's lines computed for `day` are the lines for `other`, as a reader of
    lines computed earlier (the ledger) must know.

    `today` reaches the calculation in two places only: which segments exist (those that
    start before `max(today, latest booking) + 1`, `engine.compute`) and which have ended
    (`Segment.ended`, read by minimums and draws). Both turn only where a segment starts
    or ends, so two days with none of the rep's segment boundaries in (earlier, later]
    compute the same lines; `test_same_lines_on` holds `compute` to this."""
    low, high = min(day, other), max(day, other)
    if low == high:
        return True
    return not any(
        low < s.start <= high or low < s.end <= high
        for s in segments(rep_id, inputs, high + timedelta(days=1))
    )


def _versions(
    inputs: Inputs, assignment: Assignment, stop: date | None
) -> list[tuple[PlanVersion, date, date | None]]:
    """The plan versions in force over [assignment start, stop), each with its stretch
    (`None`: open-ended)."""
    versions = sorted(inputs.plans.get(assignment.plan_id, ()), key=lambda v: v.effective_from)
    stretches: list[tuple[PlanVersion, date, date | None]] = []
    for number, version in enumerate(versions):
        following = versions[number + 1].effective_from if number + 1 < len(versions) else None
        ends = [d for d in (following, stop) if d is not None]
        start, end = max(version.effective_from, assignment.start), min(ends, default=None)
        if end is None or start < end:
            stretches.append((version, start, end))
    return stretches


def _segment(
    rep_id: str,
    inputs: Inputs,
    assignment: Assignment,
    version: PlanVersion,
    period: Period,
    start: date,
    end: date,
    first: Period,
) -> Segment:
    document = version.document
    index = periods_from_to(first, period)
    proration = Decimal((end - start).days) / Decimal((period.end - period.start).days)
    ramp = document.ramp[index - 1] if index <= len(document.ramp) else Decimal(1)
    quota = period_quota(rep_id, inputs, period, document.currency)
    if quota is None:
        quota = document.quota
    return Segment(
        rep_id=rep_id,
        period=period,
        start=start,
        end=end,
        assignment=assignment,
        version=version,
        index=index,
        proration=proration,
        quota=None if quota is None else quota * ramp * proration,
        target_variable=document.target_variable * proration,
    )


def period_quota(rep_id: str, inputs: Inputs, period: Period, currency: str) -> Decimal | None:
    """The rep's quota for `period` from `quota.set` events: each quota that overlaps the
    period counts by the share of its days inside it (an annual quota gives a quarter a
    quarter of it), converted at the period's first day (`MissingRate` if it cannot be).
    `None` when there is none."""
    total: Decimal | None = None
    for quota in inputs.quotas_of(rep_id):
        last = quota.end + timedelta(days=1)
        overlap = (min(last, period.end) - max(quota.start, period.start)).days
        if overlap <= 0:
            continue
        share = Decimal(overlap) / Decimal((last - quota.start).days)
        rate = inputs.fx.rate(quota.currency, currency, period.start)
        total = (total or ZERO) + quota.amount * share * rate
    return total


def segment_at(rep_segments: Sequence[Segment], day: date) -> int | None:
    """The index of the segment containing `day` (a rep's segments are in time order and
    never overlap), or `None`. Searched by each segment's start in place: it is asked
    several times per credit, and a list of the starts built per call cost more than the
    search."""
    index = bisect.bisect_right(rep_segments, day, key=_start) - 1
    return index if index >= 0 and rep_segments[index].contains(day) else None
