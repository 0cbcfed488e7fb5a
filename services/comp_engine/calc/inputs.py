"""What a calculation reads besides deals: assignments, plan versions, quotas, the
hierarchy, FX rates and payments, as plain values. Pure.

The repository loads these; simulate builds them from its request. Keeping them as data
(not lookups into the database) is what lets a whole recompute, a simulation and a
property test run the same code.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.comp_engine.plans.document import PlanDocument


@dataclass(frozen=True, slots=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: date
    document: PlanDocument


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
            return Decimal(1)
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
    _payments_by_deal: dict[str, list[Payment]] | None = field(
        init=False, default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_rep: dict[str, list[Assignment]] = defaultdict(list)
        for assignment in self.assignments:
            by_rep[assignment.rep_id].append(assignment)
        object.__setattr__(self, "_by_rep", dict(by_rep))

    def plan_on(self, rep_id: str, day: date) -> tuple[Assignment, PlanVersion] | None:
        """The rep's assignment and the plan version in force on `day`."""
        for assignment in self._by_rep.get(rep_id, ()):
            if assignment.covers(day):
                version = version_on(self.plans.get(assignment.plan_id, ()), day)
                return (assignment, version) if version else None
        return None

    def payments_of(self, deal_id: str) -> list[Payment]:
        """The deal's payments, oldest first (indexed on first use: a recompute asks per
        credit, and scanning every payment each time would be quadratic)."""
        if self._payments_by_deal is None:
            index: dict[str, list[Payment]] = defaultdict(list)
            for payment in sorted(self.payments, key=lambda p: (p.paid_at, p.invoice_id)):
                index[payment.deal_id].append(payment)
            object.__setattr__(self, "_payments_by_deal", dict(index))
        assert self._payments_by_deal is not None
        return self._payments_by_deal.get(deal_id, [])

    def managers_of(self, rep_id: str, day: date, levels: int) -> list[str]:
        chain: list[str] = []
        current = rep_id
        for _ in range(levels):
            manager = next(
                (
                    line.manager_id
                    for line in self.reporting
                    if line.rep_id == current
                    and line.start <= day
                    and (line.end is None or day < line.end)
                ),
                None,
            )
            if manager is None or manager in chain or manager == rep_id:
                break
            chain.append(manager)
            current = manager
        return chain


def version_on(versions: Iterable[PlanVersion], day: date) -> PlanVersion | None:
    """The latest version effective on `day`; a later version supersedes from its date."""
    effective = [v for v in versions if v.effective_from <= day]
    return max(effective, key=lambda v: (v.effective_from, v.version), default=None)
