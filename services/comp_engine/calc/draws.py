"""Draws: an advance when a period earns less than the draw, recovered from later earnings.

Per assignment, period by period once a segment has ended (Oracle's draw and recovery,
Xactly's draw types):
- earnings of the segment = its commission, accelerator, SPIFF, bonus and clawback lines;
- under the draw (prorated like the target variable) the rep is advanced the difference;
- a recoverable draw adds the advance to a balance carried forward, and from the plan's
  `recovery_start_period` on, earnings above the draw repay `recovery_percent` of the
  excess, never more than the balance; a non-recoverable draw is never repaid;
- a recovery is also held under the plan's `max_recovery_per_period` and
  `max_recovery_percent_of_earnings` (Oracle's MAX_RECOVERY_AMOUNT), the rest of the
  balance carried on;
- on a plan paid on cash the draw measures earnings as they become payable: the segment's
  earnings minus what it withholds for cash plus what cash released in it (`cash.py`).
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
    cash: Mapping[int, tuple[Decimal, Decimal]] | None = None,
) -> list[tuple[int, Raw]]:
    """`cash`: per segment, (withheld for cash, released by cash) in the plan's currency."""
    found: list[tuple[int, Raw]] = []
    balances: dict[object, Decimal] = {}
    for index, segment in enumerate(rep_segments):
        draw = segment.version.document.draw
        if draw is None or not segment.ended(today):
            continue
        earned = sum(
            (r.amount for r in raws_by_segment.get(index, ()) if r.key.kind in EARNINGS), ZERO
        )
        withheld, released = (cash or {}).get(index, (ZERO, ZERO))
        basis = earned - withheld + released
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
        if withheld or released:
            trace |= {"withheld_for_cash": str(withheld), "released_by_cash": str(released)}
        trace |= _limits(draw.max_recovery_per_period, draw.max_recovery_percent_of_earnings)
        fx = segment.payout_rate(inputs.fx, segment.last_day)
        if basis < amount:
            advance = amount - basis
            if draw.kind == "recoverable":
                balance += advance
            trace |= {"advance": str(advance), "balance_after": str(balance)}
            raw = Raw(period_key(segment, Kind.DRAW_ADVANCE, "draw"), advance, fx, trace)
            found.append((index, raw))
        elif balance and segment.index >= draw.recovery_start_period:
            recovery = recovery_of(
                balance,
                basis,
                amount,
                draw.recovery_percent,
                draw.max_recovery_per_period,
                draw.max_recovery_percent_of_earnings,
            )
            balance -= recovery
            trace |= {"recovery": str(recovery), "balance_after": str(balance)}
            raw = Raw(period_key(segment, Kind.DRAW_RECOVERY, "draw"), -recovery, fx, trace)
            found.append((index, raw))
        balances[key] = balance
    return found


def _limits(per_period: Decimal | None, percent: Decimal | None) -> dict[str, str]:
    found = {}
    if per_period is not None:
        found["max_recovery_per_period"] = str(per_period)
    if percent is not None:
        found["max_recovery_percent_of_earnings"] = str(percent)
    return found


def recovery_of(
    balance: Decimal,
    earned: Decimal,
    draw_amount: Decimal,
    recovery_percent: Decimal,
    max_per_period: Decimal | None,
    max_percent_of_earnings: Decimal | None,
) -> Decimal:
    """The share of earnings above the draw, within the balance and the recovery caps."""
    recovery = min(balance, (earned - draw_amount) * recovery_percent / HUNDRED)
    if max_per_period is not None:
        recovery = min(recovery, max_per_period)
    if max_percent_of_earnings is not None:
        recovery = min(recovery, max(earned, ZERO) * max_percent_of_earnings / HUNDRED)
    return max(recovery, ZERO)
