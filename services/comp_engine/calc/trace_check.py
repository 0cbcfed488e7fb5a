"""Redo a line's amount from its trace alone: the check behind "a person can redo the
number by hand", and the property that every line the engine writes passes it. Pure.

Nothing here reads the engine's intermediate results: the rate table, positions, payout
base, multipliers, caps, shares, conversion rate and the series total before the line all
come from the trace, and the amount is computed again from them with the table arithmetic
of `rates.py` (the definition of a rate table) and the rounding of `lines.py`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.comp_engine.calc import cash, payouts, rates
from services.comp_engine.calc.draws import recovery_of
from services.comp_engine.calc.lines import rounded
from services.comp_engine.calc.walk import capped

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


class TraceError(ValueError):
    """The trace does not say how its amount was made."""


def recompute(trace: dict[str, Any]) -> Decimal:
    """The amount the trace's line must have, in its payout currency."""
    if "adjustment" in trace:
        return Decimal(trace["adjustment"]["amount"])
    if "posting" in trace:
        inner = {k: v for k, v in trace.items() if k != "posting"}
        want = ZERO if inner.get("no_longer_expected") else recompute(inner)
        return want - Decimal(trace["posting"]["posted_before"])
    if "parts" in trace:
        return sum((recompute(part) for part in trace["parts"]), ZERO)
    for part, redo in PAYABLE_PARTS.items():
        if part in trace:
            return redo(trace)
    raw = raw_amount(trace)
    total = Decimal(trace["series_total_before"])
    converted = raw * Decimal(trace["fx_rate_to_payout"])
    currency = trace["payout_currency"]
    return rounded(total + converted, currency) - rounded(total, currency)


PAYABLE_PARTS = {
    "cash_deferral": cash.recompute_deferral,
    "cash_release": cash.recompute_release,
    "payout_cap": payouts.recompute_excess,
    "payout_cap_carry": payouts.recompute_carry_in,
}
"""Lines made from other lines' rounded amounts, already in the payout currency."""


def raw_amount(trace: dict[str, Any]) -> Decimal:
    """The unrounded amount in the plan's currency."""
    if "line" in trace:
        commission, accelerator = _component(trace)
        return commission if trace["line"] == "commission" else accelerator
    if "spiff" in trace:
        if trace["rate_percent"] is not None:
            payout = Decimal(trace["credit"]["payout_amount"])
            return payout * Decimal(trace["rate_percent"]) / HUNDRED
        return Decimal(trace["fixed_amount"])
    if "bonus" in trace:
        return _bonus(trace)
    if "minimum" in trace:
        shortfall = Decimal(trace["minimum"]) - Decimal(trace["earned_in_segment"])
        return max(shortfall, ZERO)
    if "clawback" in trace:
        earned = sum(
            (Decimal(e["commission"]) + Decimal(e["accelerator"]) for e in trace["earned_lines"]),
            ZERO,
        )
        return -earned * Decimal(trace["paid_share"]) * Decimal(trace["extent_factor"])
    if "draw" in trace:
        return _draw(trace)
    raise TraceError(f"no known calculation in trace with keys {sorted(trace)}")


def _table(trace: dict[str, Any]) -> rates.Table:
    tiers = tuple(
        rates.Tier(
            Decimal(t["from"]),
            None if t["to"] is None else Decimal(t["to"]),
            Decimal(t["rate_percent"]),
        )
        for t in trace["tiers"]
    )
    return rates.Table(
        tiers,
        rates.TierMode(trace["mode"]),
        rates.Boundary(trace["boundary"]),
        Decimal(trace["unit_value"]),
    )


def _component(trace: dict[str, Any]) -> tuple[Decimal, Decimal]:
    table = _table(trace)
    caps = trace["caps"]
    if trace["basis"] == "deal_amount":
        earned, _ = rates.earned(table, Decimal(trace["position"]))
        commission, accelerator = earned, ZERO
    else:
        commission, accelerator = _walked(trace, table)
    commission, accelerator, _ = capped(
        commission,
        accelerator,
        per_deal=None if caps["cap_per_deal"] is None else Decimal(caps["cap_per_deal"]),
        per_period=None if caps["cap_per_period"] is None else Decimal(caps["cap_per_period"]),
        paid_before=Decimal(caps["period_paid_before"]),
    )
    return commission, accelerator


def _walked(trace: dict[str, Any], table: rates.Table) -> tuple[Decimal, Decimal]:
    p0, p1 = Decimal(trace["position_before"]), Decimal(trace["position_after"])
    y0, y1 = Decimal(trace["payout_points_before"]), Decimal(trace["payout_points_after"])
    s0, s1 = p0, p0 + (y1 - y0)

    def reached(position: Decimal, payout: Decimal) -> Decimal:
        index = rates.tier_at(table.tiers, position, table.boundary)
        return rates.rate_at(table, index, position) * payout * table.unit_value

    if table.mode is rates.TierMode.MARGINAL:
        base_before = Decimal(trace["base_before"])
        base_after = base_before + rates.value(table, s1) - rates.value(table, s0)
    else:
        base_before, base_after = reached(p0, y0), reached(p1, y1)
    decel = trace["decelerator"]
    f0 = f1 = ONE
    if decel is not None:
        threshold, multiplier = Decimal(decel["threshold"]), Decimal(decel["multiplier"])
        f0 = multiplier if p0 < threshold else ONE
        f1 = multiplier if p1 < threshold else ONE
    commission = f1 * base_after - f0 * base_before
    accelerator = ZERO
    previous = ONE
    for a in trace["accelerators"]:
        threshold, multiplier = Decimal(a["threshold"]), Decimal(a["multiplier"])
        low, high = max(s0, threshold), max(s1, threshold)
        if table.mode is rates.TierMode.MARGINAL:
            above = rates.value(table, high) - rates.value(table, low)
        else:
            above = reached(p1, high - low)
        accelerator += above * (multiplier - previous)
        previous = multiplier
    return commission, accelerator


def _bonus(trace: dict[str, Any]) -> Decimal:
    attainment = Decimal(trace["quota_credited"]) * HUNDRED / Decimal(trace["quota"])
    if attainment < Decimal(trace["at_attainment"]):
        return ZERO
    if trace["percent_of_target"] is not None:
        return Decimal(trace["target_variable"]) * Decimal(trace["percent_of_target"]) / HUNDRED
    return Decimal(trace["fixed_amount"])


def _draw(trace: dict[str, Any]) -> Decimal:
    amount, earned = Decimal(trace["draw_amount"]), Decimal(trace["earned_in_segment"])
    earned += Decimal(trace.get("released_by_cash", ZERO))
    earned -= Decimal(trace.get("withheld_for_cash", ZERO))
    if earned < amount:
        return amount - earned
    per_period = trace.get("max_recovery_per_period")
    percent = trace.get("max_recovery_percent_of_earnings")
    return -recovery_of(
        Decimal(trace["balance_before"]),
        earned,
        amount,
        Decimal(trace["recovery_percent"]),
        None if per_period is None else Decimal(per_period),
        None if percent is None else Decimal(percent),
    )
