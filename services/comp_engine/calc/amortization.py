"""Capitalised commissions, amortised straight-line over the contract (ASC 340-40 /
IFRS 15), so finance reads the expense of a period beside the ledger. Pure.

A commission, accelerator, SPIFF or bonus line earned on a deal whose contract runs longer
than the practical expedient (12 months: shorter ones may be expensed when incurred) is an
asset amortised monthly from the month of the booking over the contract's months (the
deal's `contract_months`). Months are rounded as a running series, so the schedule always
adds up to the line exactly. Clawbacks and adjustments are expensed when posted.

A clawed-back deal's contract has ended (lost, deleted or cancelled inside the window), so
no consideration is left for the asset to recover: ASC 340-40-35-3 impairs it to nil. The
schedule runs as usual through the month of the end and writes the rest off in that month,
so the asset never amortises past a contract that no longer exists. The write-off is the
line less the running series at that month's end, so the periods still add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.comp_engine.calc.clawbacks import add_months
from services.comp_engine.calc.lines import Kind, rounded
from shared.periods import Period

EXPEDIENT_MONTHS = 12
CAPITALISED_KINDS = frozenset({Kind.COMMISSION, Kind.ACCELERATOR, Kind.SPIFF, Kind.BONUS})
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Capitalised:
    line_id: int
    rep_id: str
    deal_id: str
    kind: str
    amount: Decimal
    currency: str
    first_month: date
    months: int
    ended: date | None = None
    """The clawback's day: the contract ended then, and the rest is written off."""

    @property
    def scheduled(self) -> int:
        """The months the schedule runs: the term, or through the month of the end."""
        if self.ended is None:
            return self.months
        return min(max(_months_between(self.first_month, self.ended) + 1, 1), self.months)


@dataclass(frozen=True, slots=True)
class Row:
    item: Capitalised
    expense: Decimal
    amortised_to_date: Decimal
    balance: Decimal
    written_off: Decimal
    """The part of `expense` that writes the asset off at the contract's end."""


def capitalised(
    *,
    line_id: int,
    rep_id: str,
    deal_id: str,
    kind: str,
    amount: Decimal,
    currency: str,
    booked_on: date | None,
    contract_months: object,
    ended: date | None = None,
) -> Capitalised | None:
    """The line as an asset, or `None` when it is expensed as incurred."""
    try:
        months = int(str(contract_months))
    except ValueError:
        return None
    if kind not in CAPITALISED_KINDS or booked_on is None or not deal_id:
        return None
    if not EXPEDIENT_MONTHS < months <= 600:
        return None
    first = booked_on.replace(day=1)
    return Capitalised(line_id, rep_id, deal_id, kind, amount, currency, first, months, ended)


def _months_between(first: date, day: date) -> int:
    return (day.year - first.year) * 12 + day.month - first.month


def amortised_through(item: Capitalised, month_end: date) -> Decimal:
    """What has been expensed by `month_end` (exclusive): whole months since the first,
    and the whole line once the schedule is over (at its term, or written off at its end)."""
    done = max(_months_between(item.first_month, month_end), 0)
    if done >= item.scheduled:
        return item.amount
    return rounded(item.amount * done / item.months, item.currency)


def written_off(item: Capitalised) -> Decimal:
    """What the month of the end writes off: the line less its running series then."""
    amortised = rounded(item.amount * item.scheduled / item.months, item.currency)
    return item.amount - amortised


def in_period(item: Capitalised, period: Period) -> Row | None:
    """The item's expense in `period`, with what is amortised and left at its end; `None`
    when the schedule does not reach into the period."""
    last = add_months(item.first_month, item.scheduled)
    if last <= period.start or item.first_month >= period.end:
        return None
    before = amortised_through(item, period.start)
    after = amortised_through(item, period.end)
    ends_here = item.ended is not None and last <= period.end
    lost = written_off(item) if ends_here else rounded(ZERO, item.currency)
    return Row(item, after - before, after, item.amount - after, lost)
