"""SPIFFs, attainment bonuses and minimum commission: lines beside the rate tables. Pure.

- A SPIFF pays each matching payout credit booked inside its window, a fixed amount or a
  rate of the credited amount, on a line of its own per deal.
- An attainment bonus is earned by the segment whose attainment (all quota credit, every
  component's deals, clawback reversals included) stands at or above its threshold now;
  a reversal that takes attainment back under it takes the bonus back too.
- A component's minimum is topped up once its segment has ended, by the shortfall of what
  the component earned there (the minimum prorated like the target variable).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from services.comp_engine.calc.filters import matches
from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.calc.keys import deal_key, period_key
from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.segments import Segment
from services.comp_engine.calc.series import Raw
from services.comp_engine.calc.walk import Earned, Entry, credit_json
from services.comp_engine.plans.document import Component

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def spiffs(segment: Segment, entries: Sequence[Entry], inputs: Inputs) -> list[Raw]:
    raws = []
    for spiff in segment.version.document.spiffs:
        for entry in entries:
            booking = entry.credit.booking
            in_window = spiff.window_from <= booking.booked_on <= spiff.window_to
            if not entry.payout_amount or not in_window:
                continue
            if not matches(spiff.filter, entry.credit):
                continue
            amount = spiff.amount if spiff.amount is not None else ZERO
            if spiff.rate is not None:
                amount = entry.payout_amount * spiff.rate / HUNDRED
            trace = {
                "spiff": spiff.id,
                "window": [spiff.window_from.isoformat(), spiff.window_to.isoformat()],
                "fixed_amount": None if spiff.amount is None else str(spiff.amount),
                "rate_percent": None if spiff.rate is None else str(spiff.rate),
                "credit": credit_json(entry),
                "earned": str(amount),
            }
            key = deal_key(segment, Kind.SPIFF, spiff.id, entry.credit)
            fx = segment.payout_rate(inputs.fx, booking.booked_on)
            raws.append(Raw(key, amount, fx, trace))
    return raws


def bonuses(segment: Segment, entries: Sequence[Entry], inputs: Inputs) -> list[Raw]:
    document = segment.version.document
    if not document.bonuses or not segment.quota:
        return []
    credited = sum((e.quota_amount for e in entries), ZERO)
    attainment = credited * HUNDRED / segment.quota
    raws = []
    for bonus in document.bonuses:
        if attainment < bonus.at_attainment:
            continue
        amount = bonus.amount
        if bonus.percent_of_target is not None:
            amount = segment.target_variable * bonus.percent_of_target / HUNDRED
        assert amount is not None
        trace = {
            "bonus": bonus.id,
            "at_attainment": str(bonus.at_attainment),
            "attainment": str(attainment),
            "quota": str(segment.quota),
            "quota_credited": str(credited),
            "fixed_amount": None if bonus.amount is None else str(bonus.amount),
            "percent_of_target": None
            if bonus.percent_of_target is None
            else str(bonus.percent_of_target),
            "target_variable": str(segment.target_variable),
            "earned": str(amount),
        }
        fx = segment.payout_rate(inputs.fx, segment.last_day)
        raws.append(Raw(period_key(segment, Kind.BONUS, bonus.id), amount, fx, trace))
    return raws


def minimum(
    segment: Segment, component: Component, earned: Sequence[Earned], today: date, inputs: Inputs
) -> list[Raw]:
    if component.minimum_per_period is None or not segment.ended(today):
        return []
    floor = component.minimum_per_period * segment.proration
    total = sum((e.commission + e.accelerator for e in earned), ZERO)
    if total >= floor:
        return []
    trace = {
        "component": component.id,
        "minimum_per_period": str(component.minimum_per_period),
        "proration": str(segment.proration),
        "minimum": str(floor),
        "earned_in_segment": str(total),
        "earned": str(floor - total),
    }
    key = period_key(segment, Kind.COMMISSION, f"{component.id}:minimum")
    fx = segment.payout_rate(inputs.fx, segment.last_day)
    return [Raw(key, floor - total, fx, trace)]
