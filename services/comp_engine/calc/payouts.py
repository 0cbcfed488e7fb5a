"""Payout cap: at most `payment.max_payable_per_period` becomes payable in a period, and the
excess is carried into the next period, never lost. Pure.

Per rep and payout currency, period by period in time order, the period's payable is the sum
of its lines (earned, cash deferrals and releases, draws: everything the calculation posts in
it) plus what the previous period carried in. Above the cap (converted to the payout
currency at the period's last day) a `payout_cap_excess` line takes the excess out, and a
`payout_cap_carry_in` line adds it to the next period, where the cap applies again (Oracle's
payment cap with "pay excess later"). A carry past the rep's last segment lands in the next
period uncapped, to be capped there when that period is computed. Lines the cap makes are
not counted again. Holds are the ledger's, not the calculation's: a held line still counts
toward the cap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.calc.lines import Kind, Line, LineKey, rounded
from services.comp_engine.calc.segments import Segment
from shared.periods import Period

ZERO = Decimal(0)
RULE = "payout_cap"


def lines(rep_lines: Sequence[Line], rep_segments: Sequence[Segment], inputs: Inputs) -> list[Line]:
    if not rep_segments or not any(
        s.version.document.payment.max_payable_per_period is not None for s in rep_segments
    ):
        return []
    rep_id = rep_segments[0].rep_id
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for line in rep_lines:
        totals[(line.key.period, line.currency)] += line.amount
    last: dict[str, Segment] = {}
    for segment in rep_segments:
        last[segment.period.label] = segment
    periods = sorted(last.values(), key=lambda s: s.period.start)
    out: list[Line] = []
    for currency in sorted({c for _, c in totals}):
        carry = ZERO
        source: dict[str, Any] = {}
        for segment in periods:
            period = segment.period
            if carry:
                out.append(_carry_in(rep_id, period, currency, source))
            cap = segment.version.document.payment.max_payable_per_period
            if cap is None or segment.payout_currency != currency:
                carry = ZERO
                continue
            fx = segment.payout_rate(inputs.fx, segment.last_day)
            source = {
                "period": period.label,
                "plan": segment.version.ref(),
                "max_payable_per_period": str(cap),
                "plan_currency": segment.currency,
                "fx_rate_to_payout": str(fx),
                "lines_total": str(totals[(period.label, currency)]),
                "carried_in": str(carry),
            }
            carry = excess(source, currency)
            source["excess"] = str(carry)
            if carry:
                key = LineKey(rep_id, period.label, Kind.PAYOUT_CAP_EXCESS, RULE, "", 0, "")
                trace = {"payout_cap": source, "payout_currency": currency}
                out.append(Line(key, -carry, currency, trace))
        if carry:
            out.append(_carry_in(rep_id, periods[-1].period.next(), currency, source))
    return out


def _carry_in(rep_id: str, period: Period, currency: str, source: dict[str, Any]) -> Line:
    key = LineKey(rep_id, period.label, Kind.PAYOUT_CAP_CARRY_IN, RULE, "", 0, "")
    trace = {
        "payout_cap_carry": {**source, "into_period": period.label},
        "payout_currency": currency,
    }
    return Line(key, excess(source, currency), currency, trace)


def excess(source: dict[str, Any], currency: str) -> Decimal:
    """What a period's payable (its lines plus what was carried in) exceeds its cap by."""
    payable = Decimal(source["lines_total"]) + Decimal(source["carried_in"])
    cap = Decimal(source["max_payable_per_period"]) * Decimal(source["fx_rate_to_payout"])
    return rounded(max(payable - cap, ZERO), currency)


def recompute_excess(trace: dict[str, Any]) -> Decimal:
    return -excess(trace["payout_cap"], trace["payout_currency"])


def recompute_carry_in(trace: dict[str, Any]) -> Decimal:
    return excess(trace["payout_cap_carry"], trace["payout_currency"])
