"""A rep's statement for a period, from its posted lines: grouped by kind, each line in
plain words, with the totals a rep checks (earned, held, payable, paid) and where the
period's attainment and draw balance stand. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.lines import Kind
from services.comp_engine.statements.explain import explain

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
    """Per currency: earned, held, payable, paid, balance."""
    attainment: dict[str, str]
    """Per component tiered on attainment: where the period ended, in percent."""
    draw_balance: str | None


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
    totals: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {"earned": ZERO, "held": ZERO, "payable": ZERO, "paid": ZERO, "balance": ZERO}
    )
    attainment: dict[str, str] = {}
    balance: str | None = None
    for line in lines:
        t = totals[line.currency]
        if line.kind == Kind.PAYOUT:
            t["paid"] -= line.amount
        elif line.held:
            t["earned"] += line.amount
            t["held"] += line.amount
        else:
            t["earned"] += line.amount
            t["payable"] += line.amount
        trace = line.trace
        if trace.get("basis") == "attainment" and "position_after" in trace:
            attainment[trace["component"]] = trace["position_after"]
        if "balance_after" in trace:
            balance = trace["balance_after"]
    for t in totals.values():
        t["balance"] = t["payable"] - t["paid"]
    return Statement(rep_id, period, closed, lines, dict(totals), attainment, balance)
