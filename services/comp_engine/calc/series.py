"""Raw amounts to ledger lines: into the payout currency, then rounded as a running series.

Every line of one series (one rep, segment, rule and kind: a component's commission lines
in a period, say) is `round(total after) - round(total before)` in the payout currency, so
the lines add up exactly to the rounded total whatever their number. The trace gets the
conversion rate and the series total before the line, which is all `trace_check` needs
besides the raw amount to redo the rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from services.comp_engine.calc.inputs import PlanVersion
from services.comp_engine.calc.lines import Line, LineKey, minor_unit, new_line, rounded_to
from services.comp_engine.calc.traces import Trace, TraceSource, built

ZERO = Decimal(0)


@dataclass(slots=True)
class Raw:
    """One amount before conversion and rounding, with the key and trace it will carry;
    once `to_lines` has placed it in its series, also the builder of its line's trace (one
    object per line less than a builder of its own: a chunk makes ~20k lines, and keeps
    and frees every object of each). Not frozen, as `walk.Entry` is not: one is made per
    line."""

    key: LineKey
    amount: Decimal
    """In the plan's currency, unrounded."""
    fx_rate: Decimal
    """Plan currency -> payout currency."""
    trace: TraceSource
    attainment: Decimal | None = None
    """Carried to the line (`Line.attainment`)."""
    total_before: Decimal = field(init=False, repr=False, compare=False)
    """The series' unrounded total before this amount, set by `to_lines` (as are the two
    currencies and the plan version): what the line's trace needs to redo the rounding."""
    plan: PlanVersion = field(init=False, repr=False, compare=False)
    payout_currency: str = field(init=False, repr=False, compare=False)

    def raw_trace(self) -> Trace:
        """The amount's own trace (`engine._StepRaw` adds which of its step's lines it is)."""
        return built(self.trace)

    def __call__(self) -> Trace:
        """The trace of this amount's line: its own trace, and how it was converted and
        rounded."""
        return {
            **self.raw_trace(),
            "plan": self.plan.ref(),
            "raw_amount": str(self.amount),
            "plan_currency": self.plan.document.currency,
            "payout_currency": self.payout_currency,
            "fx_rate_to_payout": str(self.fx_rate),
            "series_total_before": str(self.total_before),
            "rounding": "half-up to the payout currency's minor unit, as a running series",
        }


def to_lines(raws: Iterable[Raw], *, plan: PlanVersion, payout_currency: str) -> list[Line]:
    """Lines of one series under `plan` (whose currency the raw amounts are in), in order;
    zero lines are dropped (they would post nothing)."""
    total = ZERO
    unit = minor_unit(payout_currency)
    before = rounded_to(total, unit)
    lines = []
    for raw in raws:
        converted = raw.amount * raw.fx_rate
        after = rounded_to(total + converted, unit)
        amount = after - before
        before = after
        if amount:
            raw.total_before = total
            raw.plan = plan
            raw.payout_currency = payout_currency
            lines.append(new_line(raw.key, amount, payout_currency, raw, raw.attainment))
        total += converted
    return lines
