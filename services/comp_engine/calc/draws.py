"""Draws: an advance when a period earns less than the draw, recovered from later earnings.

Per assignment, period by period once a segment has ended (Oracle's draw and recovery,
Xactly's draw types):
- earnings of the segment = its commission, accelerator, SPIFF, bonus and clawback lines;
- under the draw (prorated like the target variable) the rep is advanced the difference;
- a recoverable draw adds the advance to a balance carried forward, and from the plan's
  `recovery_start_period` on, earnings above the draw repay `recovery_percent` of the
  excess, never more than the balance; a non-recoverable draw is never repaid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.calc.keys import period_key
from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.segments import Segment
from services.comp_engine.calc.series import Raw

ZERO = Decimal(0)
HUNDRED = Decimal(100)
EARNINGS = frozenset({Kind.COMMISSION, Kind.ACCELERATOR, Kind.SPIFF, Kind.BONUS, Kind.CLAWBACK})


def lines(
    rep_segments: Sequence[Segment],
    raws_by_segment: Mapping[int, Sequence[Raw]],
    today: date,
    inputs: Inputs,
) -> list[tuple[int, Raw]]:
    found: list[tuple[int, Raw]] = []
    balances: dict[object, Decimal] = {}
    for index, segment in enumerate(rep_segments):
        draw = segment.version.document.draw
        if draw is None or not segment.ended(today):
            continue
        earned = sum(
            (r.amount for r in raws_by_segment.get(index, ()) if r.key.kind in EARNINGS), ZERO
        )
        amount = draw.amount_per_period * segment.proration
        key = (segment.assignment.rep_id, segment.assignment.plan_id, segment.assignment.start)
        balance = balances.get(key, ZERO)
        trace = {
            "draw": draw.kind,
            "amount_per_period": str(draw.amount_per_period),
            "proration": str(segment.proration),
            "draw_amount": str(amount),
            "earned_in_segment": str(earned),
            "balance_before": str(balance),
            "recovery_start_period": draw.recovery_start_period,
            "recovery_percent": str(draw.recovery_percent),
            "period_index": segment.index,
        }
        fx = segment.payout_rate(inputs.fx, segment.last_day)
        if earned < amount:
            advance = amount - earned
            if draw.kind == "recoverable":
                balance += advance
            trace |= {"advance": str(advance), "balance_after": str(balance)}
            raw = Raw(period_key(segment, Kind.DRAW_ADVANCE, "draw"), advance, fx, trace)
            found.append((index, raw))
        elif balance and segment.index >= draw.recovery_start_period:
            recovery = min(balance, (earned - amount) * draw.recovery_percent / HUNDRED)
            balance -= recovery
            trace |= {"recovery": str(recovery), "balance_after": str(balance)}
            raw = Raw(period_key(segment, Kind.DRAW_RECOVERY, "draw"), -recovery, fx, trace)
            found.append((index, raw))
        balances[key] = balance
    return found
