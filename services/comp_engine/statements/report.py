"""A rep's statement for a period, from its posted lines: grouped by kind, each line in
plain words, with the totals a rep checks and where the period's attainment and draw
balance stand. Pure.

The totals reconcile: payable = earned - withheld_for_cash + released_by_cash - carried_out
+ carried_in - held, and balance = payable - (paid - paid_for_earlier), where
`paid_for_earlier` is the part of this period's payout that paid lines of earlier closed
periods whose holds were released after they closed. `totals_explained` says each in words."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.lines import Kind
from services.comp_engine.statements.explain import explain, money

ZERO = Decimal(0)
EARNED = (
    Kind.COMMISSION,
    Kind.ACCELERATOR,
    Kind.SPIFF,
    Kind.BONUS,
    Kind.CLAWBACK,
    Kind.ADJUSTMENT,
    Kind.DRAW_ADVANCE,
    Kind.DRAW_RECOVERY,
)


@dataclass(frozen=True, slots=True)
class StatementLine:
    id: int
    kind: str
    period: str
    """Where it was earned: a prior-period adjustment shows its earlier period here."""
    deal_id: str
    rule: str
    role: str
    amount: Decimal
    currency: str
    held: bool
    explanation: str
    trace: dict[str, Any]


@dataclass(frozen=True)
class Statement:
    rep_id: str
    period: str
    closed: bool
    lines: list[StatementLine]
    totals: dict[str, dict[str, Decimal]]
    """Per currency: the `TOTALS`."""
    totals_explained: dict[str, dict[str, str]]
    """Per currency and total, the total in plain words."""
    attainment: dict[str, str]
    """Per component tiered on attainment: where the period ended, in percent."""
    draw_balance: str | None
    draw_currency: str | None = None
    """The currency of the draw line that left `draw_balance`."""


def statement(
    rep_id: str,
    period: str,
    rows: Sequence[Any],
    *,
    held_ids: set[int],
    closed: bool,
) -> Statement:
    lines = [
        StatementLine(
            id=r.id,
            kind=r.kind,
            period=r.period,
            deal_id=r.deal_id,
            rule=r.rule,
            role=r.role,
            amount=r.amount,
            currency=r.currency,
            held=r.id in held_ids,
            explanation=explain(r.kind, r.trace, r.amount, r.currency),
            trace=r.trace,
        )
        for r in rows
    ]
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(TOTALS, ZERO))
    attainment: dict[str, str] = {}
    balance: str | None = None
    balance_currency: str | None = None
    for line in lines:
        t = totals[line.currency]
        if line.kind == Kind.PAYOUT:
            t["paid"] -= line.amount
            t["paid_for_earlier"] += Decimal(line.trace["payout"].get("earlier_periods", ZERO))
            continue
        column = BY_KIND.get(line.kind, "earned")
        t[column] += -line.amount if column in NEGATED else line.amount
        if line.held:
            t["held"] += line.amount
        else:
            t["payable"] += line.amount
        trace = line.trace
        if trace.get("basis") == "attainment" and "position_after" in trace:
            attainment[trace["component"]] = trace["position_after"]
        if "balance_after" in trace:
            balance, balance_currency = trace["balance_after"], line.currency
    for t in totals.values():
        t["balance"] = t["payable"] - (t["paid"] - t["paid_for_earlier"])
    explained = {c: explain_totals(t, c) for c, t in totals.items()}
    return Statement(
        rep_id,
        period,
        closed,
        lines,
        dict(totals),
        explained,
        attainment,
        draw_balance=balance,
        draw_currency=balance_currency,
    )


TOTALS = (
    "earned",
    "withheld_for_cash",
    "released_by_cash",
    "carried_out",
    "carried_in",
    "held",
    "payable",
    "paid",
    "paid_for_earlier",
    "balance",
)
BY_KIND: dict[str, str] = {
    Kind.PAYABLE_DEFERRAL: "withheld_for_cash",
    Kind.PAYABLE_RELEASE: "released_by_cash",
    Kind.PAYOUT_CAP_EXCESS: "carried_out",
    Kind.PAYOUT_CAP_CARRY_IN: "carried_in",
}
NEGATED = frozenset({"withheld_for_cash", "carried_out"})
"""Totals shown as positive amounts of lines that are negative."""


def explain_totals(t: dict[str, Decimal], currency: str) -> dict[str, str]:
    def m(name: str) -> str:
        return money(t[name], currency)

    return {
        "earned": f"{m('earned')} earned in this statement: commissions, accelerators, "
        "SPIFFs, bonuses, clawbacks, draws and adjustments.",
        "withheld_for_cash": f"{m('withheld_for_cash')} of it is on deals paid on cash and "
        "withheld until their invoices are paid.",
        "released_by_cash": f"{m('released_by_cash')} released because invoices of such deals "
        "were paid in this period (the paid share of what each deal withheld).",
        "carried_out": f"{m('carried_out')} above the plan's payout cap, carried into the next "
        "period's payable.",
        "carried_in": f"{m('carried_in')} carried in from the previous period's payout cap.",
        "held": f"{m('held')} on hold: earned but not payable until the hold is released.",
        "payable": f"{m('payable')} payable = earned - withheld + released - carried out + "
        "carried in - held.",
        "paid": f"{m('paid')} paid at the period's close, {m('paid_for_earlier')} of it for "
        "lines of earlier periods whose holds were released after those periods closed.",
        "paid_for_earlier": f"{m('paid_for_earlier')} paid here for earlier periods' lines "
        "released from hold.",
        "balance": f"{m('balance')} payable in this period and not paid yet.",
    }


def totals_rows(s: Statement) -> Iterator[dict[str, str]]:
    """The totals in plain words, then where attainment and the draw stood at the end: the
    figures a rep checks, all in the one CSV a spreadsheet opens."""
    for currency, named in s.totals_explained.items():
        for name, words in named.items():
            yield {
                "currency": currency,
                "total": name,
                "amount": str(s.totals[currency][name]),
                "explanation": words,
            }
    for component, percent in sorted(s.attainment.items()):
        yield {
            "currency": "",
            "total": f"attainment:{component}",
            "amount": percent,
            "explanation": f"Attainment on {component} at the period's end, in % of quota.",
        }
    if s.draw_balance is not None:
        yield {
            "currency": s.draw_currency or "",
            "total": "draw_balance",
            "amount": s.draw_balance,
            "explanation": "Recoverable draw still to be recovered from later earnings.",
        }
