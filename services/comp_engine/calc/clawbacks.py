"""Clawbacks: what a booking ended inside its window takes back, and from when. Pure.

A booking ended by one of its plan's triggers within the window (`bookings.py` decides
that) keeps its original lines, in its own period; the clawback is a line of its own in
the period of the ending, referencing the deal, the event and the lines it reverses (as
Spiff does). Its size:

- base `original_rate`: what the credit earned on the plan's components (commission and
  accelerators; SPIFFs are one-off and are not clawed back); base `paid`: the part of that
  already paid out when the booking ended: nothing before its period was closed, and with
  pay on cash only the share its invoices had paid;
- extent `full`, `partial` (its percent), or `prorated`: the share of the contract term
  still to run at the ending, in calendar months from the booking day (term up to a
  cancellation event's `contract_end`, else from the deal's `contract_months` property,
  else the policy's default), so a customer who stayed six months of twelve costs half.

A cancellation event's clawback says in its trace which event it was, when and why, and
for a prorated one the term it was prorated over.

`reduces_attainment` reverses the credit's quota credit in the ending's period (never in
its own, which may be closed): later deals there earn at the lower attainment.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.comp_engine.calc.bookings import Cancellation, Ending
from services.comp_engine.calc.credits import Credit, CreditId
from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.calc.keys import deal_key
from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.payments import paid_share
from services.comp_engine.calc.segments import Segment, segment_at
from services.comp_engine.calc.series import Raw
from services.comp_engine.calc.traces import Trace
from services.comp_engine.calc.walk import Earned, Entry
from services.comp_engine.plans.document import Clawback

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


def reversals(
    rep_credits: Sequence[Credit],
    rep_segments: Sequence[Segment],
    placed: Mapping[int, Sequence[Entry]],
) -> dict[int, list[Entry]]:
    """Per segment, the negative quota credits of clawed-back bookings that reduce attainment."""
    # Only an ended booking's credits are looked up: only theirs are keyed (`Credit.id` is
    # built when read, and most of a chunk's entries never end).
    originals = {
        e.credit.id: e
        for entries in placed.values()
        for e in entries
        if e.credit.booking.ending is not None
    }
    found: dict[int, list[Entry]] = {}
    for credit in rep_credits:
        ending = credit.booking.ending
        if ending is None:
            continue
        original = originals.get(credit.id)
        policy = _policy(rep_segments, credit)
        if original is None or policy is None or not policy.reduces_attainment:
            continue
        index = segment_at(rep_segments, ending.at.date())
        if index is None or not original.quota_amount:
            continue
        found.setdefault(index, []).append(
            Entry(
                credit=credit,
                fx_rate=original.fx_rate,
                quota_amount=-original.quota_amount,
                payout_amount=ZERO,
                reversal=True,
            )
        )
    return found


def lines(
    rep_credits: Sequence[Credit],
    rep_segments: Sequence[Segment],
    earned_by_credit: Mapping[CreditId, Sequence[Earned]],
    inputs: Inputs,
) -> list[tuple[int, Raw]]:
    found = []
    for credit in rep_credits:
        ending = credit.booking.ending
        if ending is None:
            continue
        own = segment_at(rep_segments, credit.booking.booked_on)
        policy = None if own is None else rep_segments[own].version.document.clawback
        if own is None or policy is None:
            continue
        earned_items = [e for e in earned_by_credit.get(credit.id, ()) if not e.entry.reversal]
        earned = sum((e.commission + e.accelerator for e in earned_items), ZERO)
        if not earned:
            continue
        paid = ONE
        if policy.base == "paid":
            paid = _paid(credit, rep_segments[own], inputs, ending.at)
        term = _term(policy, credit, ending)
        factor = _extent(policy, term, ending.at.date())
        amount = -earned * paid * factor
        index = segment_at(rep_segments, ending.at.date())
        index = own if index is None else index
        segment = rep_segments[index]
        label = rep_segments[own].period.label
        trace = _ClawbackTrace(
            policy, ending, term, credit, label, earned_items, (earned, paid, factor)
        )
        key = deal_key(segment, Kind.CLAWBACK, "clawback", credit)
        fx = segment.payout_rate(inputs.fx, ending.at.date())
        found.append((index, Raw(key, amount, fx, trace)))
    return found


@dataclass(slots=True)
class _ClawbackTrace:
    """A clawback line's trace, built on first read (`traces.py`): it names the component
    of each line the booking earned, which would build every one of their traces."""

    policy: Clawback
    ending: Ending
    term: tuple[date, Decimal]
    credit: Credit
    original_period: str
    earned_items: list[Earned]
    figures: tuple[Decimal, Decimal, Decimal]
    """What the booking earned, the paid share and the extent factor."""

    def __call__(self) -> Trace:
        policy, ending, credit = self.policy, self.ending, self.credit
        earned, paid, factor = self.figures
        return {
            "clawback": {
                "trigger": ending.trigger.value,
                "event_id": ending.event_id,
                "at": ending.at.isoformat(),
                "window_days": policy.window_days,
                "base": policy.base,
                "extent": policy.extent,
                **_cancellation_trace(ending.cancellation),
                **_term_trace(policy, self.term, ending.at.date()),
            },
            "deal_id": credit.booking.deal_id,
            "booking": credit.booking.number,
            "role": credit.role,
            "original_period": self.original_period,
            "earned": str(earned),
            "paid_share": str(paid),
            "extent_factor": str(factor),
            "earned_lines": [
                {
                    "component": e.trace["component"],
                    "commission": str(e.commission),
                    "accelerator": str(e.accelerator),
                }
                for e in self.earned_items
            ],
        }


def _policy(rep_segments: Sequence[Segment], credit: Credit) -> Clawback | None:
    index = segment_at(rep_segments, credit.booking.booked_on)
    return None if index is None else rep_segments[index].version.document.clawback


def _paid(credit: Credit, own: Segment, inputs: Inputs, at: datetime) -> Decimal:
    closed = inputs.closed_periods.get(own.period.label)
    if closed is None or closed > at:
        return ZERO
    if own.version.document.payment.timing == "on_cash":
        return paid_share(credit.booking, inputs, at)
    return ONE


def _extent(policy: Clawback, term: tuple[date, Decimal], day: date) -> Decimal:
    if policy.extent == "full":
        return ONE
    if policy.extent == "partial":
        assert policy.partial_percent is not None
        return policy.partial_percent / HUNDRED
    start, months = term
    if months <= 0:
        return ZERO
    remaining = (months - elapsed_months(start, day)) / months
    return min(max(remaining, ZERO), ONE)


def _term(policy: Clawback, credit: Credit, ending: Ending) -> tuple[date, Decimal]:
    """The contract term a prorated clawback runs over: its start (the booking day) and its
    length in months, up to the cancellation's `contract_end` when it names one (an end on
    or before the start leaves nothing to run)."""
    start = credit.booking.booked_on
    end = None if ending.cancellation is None else ending.cancellation.contract_end
    if end is not None:
        return start, elapsed_months(start, end)
    return start, Decimal(_contract_months(credit, policy))


def _cancellation_trace(cancellation: Cancellation | None) -> dict[str, object]:
    if cancellation is None:
        return {}
    end = cancellation.contract_end
    return {
        "cancellation": {
            "event_id": cancellation.event_id,
            "cancelled_at": cancellation.cancelled_at.isoformat(),
            "reason": cancellation.reason,
            "contract_end": None if end is None else end.isoformat(),
        }
    }


def _term_trace(policy: Clawback, term: tuple[date, Decimal], day: date) -> dict[str, object]:
    if policy.extent != "prorated":
        return {}
    start, months = term
    return {
        "term": {
            "start": start.isoformat(),
            "months": str(months),
            "elapsed_months": str(elapsed_months(start, day)),
        }
    }


def elapsed_months(start: date, day: date) -> Decimal:
    """Whole calendar months from `start` to `day`, plus the elapsed share of the month
    under way by its days: 2026-01-15 to 2026-07-15 is exactly 6, and 2026-02-15 to
    2026-03-01 is 14 of February's 28 days, 0.5."""
    if day <= start:
        return ZERO
    whole = (day.year - start.year) * 12 + day.month - start.month
    if add_months(start, whole) > day:
        whole -= 1
    anniversary, following = add_months(start, whole), add_months(start, whole + 1)
    share = Decimal((day - anniversary).days) / Decimal((following - anniversary).days)
    return whole + share


def _contract_months(credit: Credit, policy: Clawback) -> int:
    value = (credit.booking.state.properties or {}).get("contract_months")
    try:
        months = int(str(value))
    except ValueError:
        return policy.contract_months_default
    return months if 1 <= months <= 600 else policy.contract_months_default


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))
