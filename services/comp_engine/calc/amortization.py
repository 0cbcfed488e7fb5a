"""Capitalised commissions, amortised straight-line over the contract (ASC 340-40 /
IFRS 15), so finance reads the expense of a period beside the ledger. Pure.

A commission, accelerator, SPIFF or bonus line earned on a deal whose contract runs longer
than the practical expedient (12 months: shorter ones may be expensed when incurred) is an
asset amortised monthly from the month of the booking over the contract's months (the
deal's `contract_months`). Months are rounded as a running series, so the schedule always
adds up to the line exactly. Clawbacks and adjustments are expensed when posted.
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


@dataclass(frozen=True, slots=True)
class Row:
    item: Capitalised
    expense: Decimal
    amortised_to_date: Decimal
    balance: Decimal


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
    return Capitalised(line_id, rep_id, deal_id, kind, amount, currency, first, months)


def amortised_through(item: Capitalised, month_end: date) -> Decimal:
    """What has been expensed by `month_end` (exclusive): whole months since the first."""
    done = (month_end.year - item.first_month.year) * 12 + month_end.month - item.first_month.month
    done = min(max(done, 0), item.months)
    return rounded(item.amount * done / item.months, item.currency)


def in_period(item: Capitalised, period: Period) -> Row | None:
    """The item's expense in `period`, with what is amortised and left at its end; `None`
    when the schedule does not reach into the period."""
    last = add_months(item.first_month, item.months)
    if last <= period.start or item.first_month >= period.end:
        return None
    before = amortised_through(item, period.start)
    after = amortised_through(item, period.end)
    return Row(item, after - before, after, item.amount - after)
