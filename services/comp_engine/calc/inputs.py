"""What a calculation reads besides deals: assignments, plan versions, quotas, the
hierarchy, FX rates and payments, as plain values. Pure.

The repository loads these; simulate builds them from its request. Keeping them as data
(not lookups into the database) is what lets a whole recompute, a simulation and a
property test run the same code.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from services.comp_engine.plans.document import PlanDocument

T = TypeVar("T")

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: date
    document: PlanDocument

    def ref(self) -> dict[str, Any]:
        """The plan version as a line's trace names it: part of every computed line's
        cause, so a disputed line says which version of which plan made it."""
        return {"id": self.plan_id, "version": self.version}


@dataclass(frozen=True, slots=True)
class Assignment:
    rep_id: str
    plan_id: str
    start: date
    end: date | None
    """Exclusive; `None` while open-ended."""
    payout_currency: str | None = None
    """The currency lines are paid in; the plan's when not given."""

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True, slots=True)
class Quota:
    rep_id: str
    start: date
    end: date
    """Inclusive, as `quota.set` gives it."""
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class ReportingLine:
    """A rep's manager from `start` (inclusive) to `end` (exclusive, or open)."""

    rep_id: str
    manager_id: str
    start: date
    end: date | None


@dataclass(frozen=True, slots=True)
class FxRate:
    base: str
    quote: str
    day: date
    rate: Decimal
    """1 `base` = `rate` `quote`."""


@dataclass(frozen=True, slots=True)
class Payment:
    deal_id: str
    invoice_id: str
    paid_at: datetime
    amount: Decimal
    currency: str


class MissingRate(LookupError):
    def __init__(self, base: str, quote: str, day: date) -> None:
        super().__init__(f"no FX rate {base}->{quote} on or before {day.isoformat()}")
        self.base, self.quote, self.day = base, quote, day


@dataclass(frozen=True)
class FxTable:
    """Dated rates; a conversion uses the latest rate on or before its day, either way round."""

    rates: Sequence[FxRate] = ()
    _by_pair: dict[tuple[str, str], tuple[list[date], list[Decimal]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        pairs: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for r in self.rates:
            pairs[(r.base, r.quote)].append((r.day, r.rate))
            pairs[(r.quote, r.base)].append((r.day, 1 / r.rate))
        table = {
            k: ([d for d, _ in sorted(v)], [x for _, x in sorted(v)]) for k, v in pairs.items()
        }
        object.__setattr__(self, "_by_pair", table)

    def rate(self, base: str, quote: str, day: date) -> Decimal:
        if base == quote:
            return ONE
        days, values = self._by_pair.get((base, quote), ([], []))
        index = bisect.bisect_right(days, day) - 1
        if index < 0:
            raise MissingRate(base, quote, day)
        return values[index]


@dataclass(frozen=True)
class Inputs:
    plans: Mapping[str, Sequence[PlanVersion]]
    """Per plan id, its versions."""
    assignments: Sequence[Assignment]
    quotas: Sequence[Quota] = ()
    reporting: Sequence[ReportingLine] = ()
    fx: FxTable = field(default_factory=FxTable)
    payments: Sequence[Payment] = ()
    closed_periods: Mapping[str, datetime] = field(default_factory=dict)
    """Period label -> when it was closed (and its payable paid out)."""
    _by_rep: dict[str, list[Assignment]] = field(init=False, repr=False, compare=False)
    _lines_by_rep: dict[str, list[ReportingLine]] = field(init=False, repr=False, compare=False)
    _quotas_by_rep: dict[str, list[Quota]] = field(init=False, repr=False, compare=False)
    _payments_by_deal: dict[str, list[Payment]] = field(init=False, repr=False, compare=False)
    _stretches: dict[str, tuple[list[date], list[tuple[Assignment, PlanVersion] | None]]] = field(
        init=False, repr=False, compare=False
    )
    _managers: dict[tuple[str, date, int], tuple[str, ...]] = field(
        init=False, repr=False, compare=False
    )
    manager_ids: frozenset[str] = field(init=False, repr=False, compare=False)
    """Every rep who is someone's manager on some day: only they get roll-up credit."""

    def __post_init__(self) -> None:
        # Indexes by rep (and deal): a whole recompute asks these per credit, and scanning
        # every assignment, reporting line or quota each time made it quadratic in reps.
        # Each keeps the inputs' own order, so every lookup answers what a scan would.
        object.__setattr__(self, "_by_rep", _grouped(self.assignments, lambda a: a.rep_id))
        object.__setattr__(self, "_lines_by_rep", _grouped(self.reporting, lambda r: r.rep_id))
        object.__setattr__(self, "manager_ids", frozenset(r.manager_id for r in self.reporting))
        object.__setattr__(self, "_quotas_by_rep", _grouped(self.quotas, lambda q: q.rep_id))
        # Payments oldest first: the cash releases walk them in time order.
        by_time = sorted(self.payments, key=lambda p: (p.paid_at, p.invoice_id))
        object.__setattr__(self, "_payments_by_deal", _grouped(by_time, lambda p: p.deal_id))
        object.__setattr__(self, "_stretches", {})
        object.__setattr__(self, "_managers", {})

    def plan_on(self, rep_id: str, day: date) -> tuple[Assignment, PlanVersion] | None:
        """The rep's assignment and the plan version in force on `day`. Every credit asks,
        on tens of thousands of rep-days a chunk, but the answer only turns where one of the
        rep's assignments starts or ends or a version of its plans takes effect: it is
        worked out once per stretch between those days, and each day finds its stretch."""
        stretches = self._stretches.get(rep_id)
        if stretches is None:
            stretches = self._stretches[rep_id] = self._plan_stretches(rep_id)
        days, found = stretches
        return found[bisect.bisect_right(days, day)]

    def _plan_stretches(
        self, rep_id: str
    ) -> tuple[list[date], list[tuple[Assignment, PlanVersion] | None]]:
        """The days the rep's plan can turn on, and the answer from each (the first before
        them all: no assignment has started). Every test `_scan_plan_on` makes of a day
        compares it with one of these days, so a stretch's first day answers for it all."""
        turns: set[date] = set()
        for assignment in self._by_rep.get(rep_id, ()):
            turns.add(assignment.start)
            if assignment.end is not None:
                turns.add(assignment.end)
            turns.update(v.effective_from for v in self.plans.get(assignment.plan_id, ()))
        days = sorted(turns)
        return days, [None] + [self._scan_plan_on(rep_id, day) for day in days]

    def _scan_plan_on(self, rep_id: str, day: date) -> tuple[Assignment, PlanVersion] | None:
        for assignment in self._by_rep.get(rep_id, ()):
            if assignment.covers(day):
                version = version_on(self.plans.get(assignment.plan_id, ()), day)
                return (assignment, version) if version else None
        return None

    def assignments_of(self, rep_id: str) -> list[Assignment]:
        return self._by_rep.get(rep_id, [])

    def quotas_of(self, rep_id: str) -> list[Quota]:
        return self._quotas_by_rep.get(rep_id, [])

    def payments_of(self, deal_id: str) -> list[Payment]:
        return self._payments_by_deal.get(deal_id, [])

    def managers_of(self, rep_id: str, day: date, levels: int) -> tuple[str, ...]:
        """The rep's managers on `day`, nearest first, up to `levels` (remembered: every
        credit of the rep's day asks again)."""
        key = (rep_id, day, levels)
        found = self._managers.get(key)
        if found is not None:
            return found
        chain: list[str] = []
        current = rep_id
        for _ in range(levels):
            manager = None
            for line in self._lines_by_rep.get(current, ()):
                if line.start <= day and (line.end is None or day < line.end):
                    manager = line.manager_id
                    break
            if manager is None or manager in chain or manager == rep_id:
                break
            chain.append(manager)
            current = manager
        found = self._managers[key] = tuple(chain)
        return found


def _grouped(items: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    found: dict[str, list[T]] = defaultdict(list)
    for item in items:
        found[key(item)].append(item)
    return dict(found)


def version_on(versions: Iterable[PlanVersion], day: date) -> PlanVersion | None:
    """The latest version effective on `day`; a later version supersedes from its date."""
    effective = [v for v in versions if v.effective_from <= day]
    return max(effective, key=lambda v: (v.effective_from, v.version), default=None)
