"""Ledger lines as the calculation produces them, and the rounding every amount goes through.

A line is identified by its `LineKey`: which rep, period and rule, about which deal (or
none for period-level lines). The ledger posts, per key, the difference between what the
calculation says the key should hold and what it already holds (`posting.py`), so a key
must not depend on anything that can change without the money changing: the plan
*version* is in the trace, not the key, so correcting a plan posts one difference per
line rather than a reversal and a new line.

Rounding: each amount is rounded half-up to the currency's minor unit, and a series of
lines that add up to one running total (a component's deals in a period) is rounded as
`round(total after) - round(total before)`, so the lines always sum to the rounded total
and no cent drifts however many deals there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from enum import StrEnum

from services.comp_engine.calc.slots import setters
from services.comp_engine.calc.traces import Trace, TraceSource, kept

ZERO = Decimal(0)

ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "XAF", "XOF", "UGX"})
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class Kind(StrEnum):
    COMMISSION = "commission"
    ACCELERATOR = "accelerator"
    SPIFF = "spiff"
    BONUS = "bonus"
    DRAW_ADVANCE = "draw_advance"
    DRAW_RECOVERY = "draw_recovery"
    CLAWBACK = "clawback"
    ADJUSTMENT = "adjustment"
    PAYOUT = "payout"
    PAYABLE_DEFERRAL = "payable_deferral"
    """Pay on cash: a deal's earnings withheld at booking (negative payable)."""
    PAYABLE_RELEASE = "payable_release"
    """Pay on cash: the share of the withheld earnings the deal's paid invoices release."""
    PAYOUT_CAP_EXCESS = "payout_cap_excess"
    """Payout cap: what a period's payable exceeds the cap by, carried out of it."""
    PAYOUT_CAP_CARRY_IN = "payout_cap_carry_in"
    """Payout cap: the previous period's excess, carried into this period's payable."""


ONE = Decimal(1)
THOUSANDTH = Decimal("0.001")
CENT = Decimal("0.01")


def minor_unit(currency: str) -> Decimal:
    if currency in ZERO_DECIMAL_CURRENCIES:
        return ONE
    if currency in THREE_DECIMAL_CURRENCIES:
        return THOUSANDTH
    return CENT


WORKING_PLACES = Decimal("1e-15")
"""Where an amount is settled before it is rounded to the minor unit. Decimal keeps 28
significant digits, so a non-terminating step (a position of 36.5 / 3.1 of a unit) leaves
noise in the last places: 36.5 at 10% comes out 3.6499999999999999999999999 by the tier
walk and 3.65 by the trace's own arithmetic, and half-up rounding of an amount exactly at
half a minor unit would then depend on the route. Settled at 15 places first (noise is
~1e-20 at the largest amounts; inputs carry far fewer places), both routes round alike."""
# Each rounding through a context's own `quantize` (its rounding set on it): a third of
# the cost of `Decimal.quantize` with keyword arguments, once or twice a line.
_SETTLE = Context(prec=60, rounding=ROUND_HALF_EVEN).quantize
_ROUND = Context(prec=60, rounding=ROUND_HALF_UP).quantize


def rounded(amount: Decimal, currency: str) -> Decimal:
    return rounded_to(amount, minor_unit(currency))


def rounded_to(amount: Decimal, unit: Decimal) -> Decimal:
    """`rounded` to the minor unit `unit`, for a series that looks it up once."""
    return _ROUND(_SETTLE(amount, WORKING_PLACES), unit)


@dataclass(frozen=True, slots=True, order=True)
class LineKey:
    rep_id: str
    period: str
    """The period the amount was earned in (a prior-period adjustment keeps it here and
    says where it was posted)."""
    kind: Kind
    rule: str
    """The component, SPIFF, bonus, 'draw', 'clawback:<component>' ... that produced it."""
    deal_id: str
    """'' for period-level lines (bonuses, minimums, draws)."""
    booking: int
    """Which booking of the deal (a deal clawed back and won again is booked twice); 0 for
    period-level lines."""
    role: str
    """The credit's role: 'owner', a split role, or 'manager:<level>'."""


@dataclass(frozen=True, slots=True)
class Line:
    key: LineKey
    amount: Decimal
    """In `currency`, already rounded."""
    currency: str
    source: TraceSource = field(compare=False, repr=False)
    """The trace, or what builds it on first read (`traces.py`)."""
    attainment: Decimal | None = field(default=None, compare=False, repr=False)
    """A commission line of an attainment-tiered component: its trace's `position_after`
    (the rep's attainment after the credit) as a number; None on every other line."""

    @property
    def trace(self) -> Trace:
        """Everything needed to redo the amount by hand: `trace_check.recompute` does it.
        Built once, on first read, and kept."""
        return kept(self)

    def __reduce__(
        self,
    ) -> tuple[type[Line], tuple[LineKey, Decimal, str, Trace, Decimal | None]]:
        """Pickled (to or from a worker process) with its trace built: a builder is a
        closure over the calculation's objects."""
        return (Line, (self.key, self.amount, self.currency, self.trace, self.attainment))


def new_key(
    rep_id: str, period: str, kind: Kind, rule: str, deal_id: str, booking: int, role: str
) -> LineKey:
    """`LineKey(...)` for the calculation's hot loops, set through the class's slots."""
    key = _new(LineKey)
    _key_rep_id(key, rep_id)
    _key_period(key, period)
    _key_kind(key, kind)
    _key_rule(key, rule)
    _key_deal_id(key, deal_id)
    _key_booking(key, booking)
    _key_role(key, role)
    return key


def new_line(
    key: LineKey, amount: Decimal, currency: str, source: TraceSource, attainment: Decimal | None
) -> Line:
    """`Line(...)` for the calculation's hot loops, set through the class's slots."""
    line = _new(Line)
    _line_key(line, key)
    _line_amount(line, amount)
    _line_currency(line, currency)
    _line_source(line, source)
    _line_attainment(line, attainment)
    return line


# A chunk makes ~20k keys and lines (`slots.py`). Every field is set, so each equals what
# the constructor builds.
_new = object.__new__
(
    _key_rep_id,
    _key_period,
    _key_kind,
    _key_rule,
    _key_deal_id,
    _key_booking,
    _key_role,
) = setters(LineKey, "rep_id", "period", "kind", "rule", "deal_id", "booking", "role")
_line_key, _line_amount, _line_currency, _line_source, _line_attainment = setters(
    Line, "key", "amount", "currency", "source", "attainment"
)
