"""A ledger line in plain words, from its trace: what a rep reads on a statement. Pure.

Each sentence names the deal, the credit, the figures the calculation used and the result,
so a rep can redo the number by hand (the trace holds the same figures for a machine).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.comp_engine.calc.trace_check import recompute


def money(value: str | Decimal, currency: str = "") -> str:
    text = f"{Decimal(value):,.2f}"
    return f"{text} {currency}".strip()


def number(value: str | Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def explain(kind: str, trace: dict[str, Any], amount: Decimal, currency: str) -> str:
    if parts := trace.get("parts"):
        each = " ".join(_body(kind, part, recompute(part), currency) for part in parts)
        key = "one key (rep, period, kind, rule, deal)"
        sentence = f"{len(parts)} lines of {key}, together: {each}"
    else:
        sentence = _body(kind, trace, amount, currency)
    plan = _plan_of(trace)
    if plan:
        sentence += f" Plan {plan['id']}, version {plan['version']}."
    posting = trace.get("posting")
    if posting and Decimal(posting["posted_before"]):
        sentence += (
            f" Recalculated: {money(posting['expected'], currency)} now expected, "
            f"{money(posting['posted_before'], currency)} posted before, so "
            f"{money(posting['difference'], currency)} posted now."
        )
    return sentence


def _body(kind: str, trace: dict[str, Any], amount: Decimal, currency: str) -> str:
    if "adjustment" in trace:
        a = trace["adjustment"]
        return f"Adjustment by {a['author']}: {a['reason']} ({money(amount, currency)})."
    if trace.get("no_longer_expected"):
        return "No longer earned (the deal or rule changed); reverses what was posted."
    if "cash_deferral" in trace:
        d = trace["cash_deferral"]
        return (
            f"Deal {d['deal_id']} is paid on cash ({d['rule']}, set by the {d['timing_set_by']}): "
            f"the {money(d['withheld'], currency)} it earned in {d['earned_period']} is "
            f"withheld until its invoices are paid ({money(amount, currency)})."
        )
    if "cash_release" in trace:
        return _release(trace["cash_release"], amount, currency)
    if "payout_cap" in trace:
        c = trace["payout_cap"]
        return (
            f"Payout cap {money(c['max_payable_per_period'], c['plan_currency'])} a period: "
            f"{money(c['lines_total'], currency)} of lines + {money(c['carried_in'], currency)} "
            f"carried in exceeds it by {money(c['excess'], currency)}, carried into the next "
            "period."
        )
    if "payout_cap_carry" in trace:
        c = trace["payout_cap_carry"]
        return (
            f"Carried in from {c['period']}, where payable was above the "
            f"{money(c['max_payable_per_period'], c['plan_currency'])} payout cap: "
            f"{money(amount, currency)}."
        )
    if "clawback" in trace:
        return _clawback(trace, amount, currency)
    if "line" in trace:
        return _component(trace, amount, currency)
    if "spiff" in trace:
        credit = trace["credit"]
        how = (
            f"{number(trace['rate_percent'])}% of {money(credit['payout_amount'])}"
            if trace["rate_percent"] is not None
            else f"a fixed {money(trace['fixed_amount'])}"
        )
        deal = credit["deal_id"]
        return f"SPIFF {trace['spiff']} on deal {deal}: {how} = {money(amount, currency)}."
    if "bonus" in trace:
        return (
            f"Bonus {trace['bonus']}: attainment {number(trace['attainment'])}% reached "
            f"{number(trace['at_attainment'])}%: {money(amount, currency)}."
        )
    if "minimum" in trace:
        return (
            f"Minimum for {trace['component']}: {money(trace['minimum'])} guaranteed, "
            f"{money(trace['earned_in_segment'])} earned, topped up by {money(amount, currency)}."
        )
    if "draw" in trace:
        return _draw(trace, amount, currency)
    return f"{kind}: {money(amount, currency)}."


def _component(trace: dict[str, Any], amount: Decimal, currency: str) -> str:
    credit = trace["credit"]
    who = f"{credit['role']} credit {number(Decimal(credit['share']) * 100)}%"
    head = (
        f"Deal {credit['deal_id']} booked {credit['booked_on']}, {who} of "
        f"{money(credit['amount'], credit['currency'])}"
    )
    if trace["line"] == "accelerator":
        parts = ", ".join(
            f"x{number(a['multiplier'])} above {number(a['threshold'])}: {money(a['extra'])}"
            for a in trace["accelerators"]
            if Decimal(a["extra"])
        )
        return f"{head}: accelerator {parts} = {money(amount, currency)}."
    steps = " + ".join(_step(trace, s) for s in trace["tier_walk"])
    where = ""
    if "position_before" in trace:
        unit = "%" if trace["basis"] == "attainment" else ""
        where = (
            f"; {trace['basis'].replace('_', ' ')} {number(trace['position_before'])}{unit} -> "
            f"{number(trace['position_after'])}{unit}"
        )
    capped = trace["caps"]["applied"]
    cap = f", capped ({', '.join(capped)})" if capped else ""
    return (
        f"{head}: {steps or 'nothing'} ({trace['mode']}{where}){cap} = {money(amount, currency)}."
    )


def _step(trace: dict[str, Any], step: dict[str, str]) -> str:
    """One tier's slice: in money when the table pays a percent of the amount (an attainment
    slice converted back through the quota), in points when it pays a share of target."""
    width = Decimal(step["to"]) - Decimal(step["from"])
    rate, tier = number(step["rate_percent"]), step["tier"]
    if trace["unit"] == "percent_of_target_per_attainment_point":
        return f"{number(width)} attainment points at {rate}% of target each (tier {tier})"
    if trace["basis"] == "attainment":
        width = width / Decimal(trace["position_per_unit"])
    return f"{money(width)} at {rate}% (tier {tier})"


def _release(r: dict[str, Any], amount: Decimal, currency: str) -> str:
    if r["settled_by_clawback"]:
        return (
            f"Deal {r['deal_id']} was clawed back at the original rate: the rest of the "
            f"{money(r['withheld'], currency)} withheld for cash is released against the "
            f"clawback ({money(amount, currency)})."
        )
    invoices = ", ".join(
        f"{i['invoice_id']} {money(i['amount'], i['currency'])} on {i['paid_at'][:10]}"
        for i in r["invoices"]
    )
    return (
        f"Deal {r['deal_id']} invoices paid ({invoices}): paid "
        f"{money(r['paid_cumulative'], r['deal_currency'])} of "
        f"{money(r['deal_amount'], r['deal_currency'])}, share {number(r['share_before'])} -> "
        f"{number(r['share_after'])} of the {money(r['withheld'], currency)} withheld: "
        f"{money(amount, currency)} released ({money(r['released_cumulative'], currency)} "
        "so far)."
    )


def _draw(trace: dict[str, Any], amount: Decimal, currency: str) -> str:
    cash = ""
    if "withheld_for_cash" in trace:
        cash = (
            f" (on cash: {money(trace['withheld_for_cash'])} withheld, "
            f"{money(trace['released_by_cash'])} released)"
        )
    if "advance" in trace:
        return (
            f"Draw: {money(trace['earned_in_segment'])} earned{cash} against a "
            f"{money(trace['draw_amount'])} draw, advanced {money(amount, currency)}; "
            f"balance {money(trace['balance_after'])}."
        )
    limits = ""
    if "max_recovery_per_period" in trace:
        limits += f", at most {money(trace['max_recovery_per_period'])} a period"
    if "max_recovery_percent_of_earnings" in trace:
        limits += f", at most {number(trace['max_recovery_percent_of_earnings'])}% of earnings"
    return (
        f"Draw recovery: {number(trace['recovery_percent'])}% of earnings{cash} above the "
        f"{money(trace['draw_amount'])} draw{limits}, {money(amount, currency)}; balance "
        f"{money(trace['balance_after'])}."
    )


def _clawback(trace: dict[str, Any], amount: Decimal, currency: str) -> str:
    """Why the deal ended (a cancellation's reason and contract end, a prorated clawback's
    share of the term still to run), then the figures."""
    c = trace["clawback"]
    why = ""
    if cancellation := c.get("cancellation"):
        why = f" ({cancellation['reason']}"
        if cancellation["contract_end"]:
            why += f"; contract ends {cancellation['contract_end'][:10]}"
        why += ")"
    extent = f"{c['extent']} extent {number(trace['extent_factor'])}"
    if term := c.get("term"):
        extent += (
            f" ({number(term['elapsed_months'])} of the {number(term['months'])} contract "
            f"months from {term['start']} elapsed)"
        )
    return (
        f"Deal {trace['deal_id']} was {c['trigger']} on {c['at'][:10]}{why}, within the "
        f"{c['window_days']}-day clawback window: {money(trace['earned'])} it earned in "
        f"{trace['original_period']} x paid share {number(trace['paid_share'])} x "
        f"{extent} = {money(amount, currency)}."
    )


def _plan_of(trace: dict[str, Any]) -> dict[str, Any] | None:
    """The plan version that made the line: at the trace's top for a commission, SPIFF,
    bonus, minimum, draw or clawback line, inside the pay-on-cash and payout-cap parts."""
    for part in ("cash_deferral", "cash_release", "payout_cap", "payout_cap_carry"):
        if part in trace:
            plan: dict[str, Any] | None = trace[part].get("plan")
            return plan
    return trace.get("plan")
