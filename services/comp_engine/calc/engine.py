"""Where a won deal becomes ledger lines: the whole calculation, from scratch. Pure.

`compute` takes every deal's history and the plans, assignments, quotas, hierarchy, FX
rates, payments and closed periods, and returns every line the ledger should hold as of
`today`, each with its trace. It is deterministic and knows nothing of what was already
posted: `posting.py` compares its answer with the ledger and posts the differences, which
is why recomputing twice, or replaying the stream, adds nothing.

The steps, one module each: bookings (`bookings.py`) -> credits (`credits.py`) -> segments
(`segments.py`) -> per component the walk (`walk.py`) -> SPIFFs, bonuses, minimums
(`extras.py`) -> clawbacks (`clawbacks.py`) -> draws (`draws.py`) -> lines (`series.py`)
-> pay on cash (`cash.py`) -> the payout cap (`payouts.py`).

Deals whose currency cannot be converted, and attainment tables without a quota, are not
guessed at: they come back in `waiting` with the reason, for the dead-letter place.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import ClassVar

from services.comp_engine.calc import cash, clawbacks, draws, extras, payouts
from services.comp_engine.calc.bookings import (
    Booking,
    DealState,
    bookings,
    bookings_if_alike,
)
from services.comp_engine.calc.credits import Credit, CreditId, Crediting
from services.comp_engine.calc.filters import matches, takes_all
from services.comp_engine.calc.inputs import Inputs, MissingRate
from services.comp_engine.calc.keys import deal_key
from services.comp_engine.calc.lines import Kind, Line
from services.comp_engine.calc.segments import Segment, segment_at, segments
from services.comp_engine.calc.series import Raw, to_lines
from services.comp_engine.calc.traces import Trace, built
from services.comp_engine.calc.walk import Earned, Entry, NoQuota, walk
from services.comp_engine.plans.document import Clawback

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Waiting:
    rep_id: str
    subject: str
    """A deal id, or 'period:<label>' for a rep's period."""
    reason: str


@dataclass
class Result:
    lines: list[Line] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)


def compute(
    histories: Mapping[str, Sequence[DealState]],
    inputs: Inputs,
    *,
    today: date,
    only: Collection[str] | None = None,
) -> Result:
    """Every line of every assigned rep, or of the reps in `only` (whose deals, and for
    managers their reports' deals, `histories` must hold)."""
    result = Result()
    wanted = None if only is None else set(only)
    all_credits = _credits(histories, inputs, wanted)
    by_rep: dict[str, list[Credit]] = defaultdict(list)
    for credit in all_credits:
        by_rep[credit.rep_id].append(credit)
    reps = sorted({a.rep_id for a in inputs.assignments if wanted is None or a.rep_id in wanted})
    for rep_id in reps:
        rep_credits = sorted(by_rep.get(rep_id, []), key=lambda c: c.order)
        # A credit's order starts with its booking day, so the last one's is the latest.
        latest = rep_credits[-1].booking.booked_on if rep_credits else today
        until = max(today, latest) + timedelta(days=1)
        _rep(rep_id, rep_credits, segments(rep_id, inputs, until), inputs, today, result)
    return result


def line_order(line: Line) -> tuple[object, ...]:
    """`LineKey` order as one tuple per line: sorting a million lines by the key's own
    comparison built two tuples per comparison."""
    k = line.key
    return (k.rep_id, k.period, k.kind, k.rule, k.deal_id, k.booking, k.role)


def _credits(
    histories: Mapping[str, Sequence[DealState]],
    inputs: Inputs,
    only: Collection[str] | None,
) -> list[Credit]:
    """Credits of every deal (of the reps in `only`, when given), each from the bookings
    its rep's own clawback policy gives (a split between reps on different plans can
    settle differently for each)."""
    policies: dict[str, Clawback | None] = {}
    key_of: dict[tuple[str, int], str] = {}
    for versions in inputs.plans.values():
        for version in versions:
            policy = version.document.clawback
            key_of[(version.plan_id, version.version)] = _policy_key(policy)
            policies[_policy_key(policy)] = policy
    crediting = Crediting(inputs, only)
    found: list[Credit] = []
    # Bookings every policy settles alike, credited together after the loop: `credits`
    # called once per deal cost more in the call than in crediting its one booking. Their
    # credits then precede the others in `found`, which only the per-rep sort by
    # `Credit.order` reads: credits of different deals never tie there, and each deal's
    # own keep their order.
    alike_bookings: list[Booking] = []
    for deal_id in sorted(histories):
        history = histories[deal_id]
        alike = bookings_if_alike(deal_id, history)
        if alike is not None:
            # Settled once, and every credit kept: `credits` builds one only for a rep
            # with a plan on the day, and every plan's policy gives these bookings.
            alike_bookings += alike
            continue
        # Policies settle other deals alike too (a change after the window): their credits
        # are built once per distinct set of bookings, and each credit kept under the
        # policy of its rep's plan.
        settled: list[tuple[list[Booking], set[str]]] = []
        for key, policy in policies.items():
            booked = bookings(deal_id, history, policy)
            same = next((keys for b, keys in settled if b == booked), None)
            if same is None:
                settled.append((booked, {key}))
            else:
                same.add(key)
        for booked, keys in settled:
            for credit in crediting.credits(booked):
                plan = inputs.plan_on(credit.rep_id, credit.booking.booked_on)
                if plan is not None and key_of[(plan[1].plan_id, plan[1].version)] in keys:
                    found.append(credit)
    return crediting.credits(alike_bookings) + found


def _policy_key(policy: Clawback | None) -> str:
    return "" if policy is None else policy.model_dump_json()


def _rep(
    rep_id: str,
    rep_credits: list[Credit],
    rep_segments: list[Segment],
    inputs: Inputs,
    today: date,
    result: Result,
) -> None:
    raws_by_segment: dict[int, list[Raw]] = defaultdict(list)
    # What each ended booking's credits earned, which is all a clawback reads (a list per
    # credit of every booking would be thousands of lists kept for nothing).
    earned_by_credit: dict[CreditId, list[Earned]] = defaultdict(list)
    placed: dict[int, list[Entry]] = defaultdict(list)
    # A rep's credits fall on a few hundred days: each day's segment is searched for once.
    segment_on: dict[date, int | None] = {}
    for credit in rep_credits:
        day = credit.booking.booked_on
        if day in segment_on:
            index = segment_on[day]
        else:
            index = segment_on[day] = segment_at(rep_segments, day)
        if index is None:
            continue
        entry = _entry(credit, rep_segments[index], inputs, result)
        if entry is not None:
            placed[index].append(entry)
    reversals = clawbacks.reversals(rep_credits, rep_segments, placed)
    for index, segment in enumerate(rep_segments):
        # Placed in the credits' order, which `_entry_order` keeps (each credit's order
        # starts with its booking day): the few reversals are inserted where a stable sort
        # of both would put them (after equal keys), not every entry sorted again.
        entries = placed[index]
        if index in reversals:
            entries = list(entries)
            for reversal in reversals[index]:
                bisect.insort_right(entries, reversal, key=_entry_order)
        raws = raws_by_segment[index]
        try:
            for component in segment.version.document.components:
                matching = (
                    entries
                    if takes_all(component.filter)
                    else [e for e in entries if matches(component.filter, e.credit)]
                )
                earned = walk(
                    component,
                    matching,
                    quota=segment.quota,
                    target_variable=segment.target_variable,
                )
                for item in earned:
                    if item.entry.credit.booking.ending is not None:
                        earned_by_credit[item.entry.credit.id].append(item)
                raws += _component_raws(segment, component.id, earned, inputs)
                raws += extras.minimum(segment, component, earned, today, inputs)
            raws += extras.bonuses(segment, entries, inputs)
        except (NoQuota, MissingRate) as exc:
            label = segment.period.label
            result.waiting.append(Waiting(rep_id, f"period:{label}", f"{label}: {exc}"))
            raws.clear()
            continue
        raws += extras.spiffs(segment, placed[index], inputs)
    for index, raw in clawbacks.lines(rep_credits, rep_segments, earned_by_credit, inputs):
        raws_by_segment[index].append(raw)
    on_cash = cash.Cash(rep_credits, rep_segments, inputs)
    basis = on_cash.basis_for_draws(raws_by_segment)
    for index, raw in draws.lines(rep_segments, raws_by_segment, today, inputs, basis):
        raws_by_segment[index].append(raw)
    rep_lines: list[Line] = []
    for index, segment in enumerate(rep_segments):
        rep_lines += _series_lines(segment, raws_by_segment[index])
    rep_lines += on_cash.lines(rep_lines)
    rep_lines += payouts.lines(rep_lines, rep_segments, inputs)
    # Sorted a rep at a time: every line of a rep is keyed to it and `compute` takes the
    # reps in order, so the whole result is in key order without a sort of all of it.
    rep_lines.sort(key=line_order)
    result.lines += rep_lines
    result.waiting += [Waiting(rep_id, deal, why) for deal, why in dict(on_cash.missing).items()]


def _entry(credit: Credit, segment: Segment, inputs: Inputs, result: Result) -> Entry | None:
    try:
        rate = inputs.fx.rate(credit.currency, segment.currency, credit.booking.booked_on)
    except MissingRate as exc:
        result.waiting.append(Waiting(credit.rep_id, credit.booking.deal_id, str(exc)))
        return None
    amount = credit.amount * rate
    # By position: keywords cost a third more, once a credit.
    return Entry(credit, rate, amount if credit.quota else ZERO, amount if credit.payout else ZERO)


def _entry_order(entry: Entry) -> tuple[object, ...]:
    day = (
        entry.credit.booking.ending.at.date()
        if entry.reversal and entry.credit.booking.ending
        else None
    )
    return (day or entry.credit.booking.booked_on, entry.reversal, entry.credit.order)


def _component_raws(
    segment: Segment, component_id: str, earned: Sequence[Earned], inputs: Inputs
) -> list[Raw]:
    raws: list[Raw] = []
    # A segment's deals fall on a few dozen days: each day's payout rate is looked up once,
    # and none when the plan pays in its own currency (`FxTable.rate` is then 1).
    payout_rates: dict[date, Decimal] = {}
    own_currency = segment.currency == segment.payout_currency
    for item in earned:
        credit = item.entry.credit
        day = credit.booking.booked_on
        fx = ONE if own_currency else payout_rates.get(day)
        if fx is None:
            fx = payout_rates[day] = segment.payout_rate(inputs.fx, day)
        key = deal_key(segment, Kind.COMMISSION, component_id, credit)
        raws.append(_CommissionRaw(key, item.commission, fx, item, item.attainment))
        if item.accelerator:
            key = deal_key(segment, Kind.ACCELERATOR, component_id, credit)
            raws.append(_AcceleratorRaw(key, item.accelerator, fx, item))
    return raws


@dataclass(slots=True)
class _StepRaw(Raw):
    """A component line's raw amount, whose `trace` is its step (an `Earned`): its own
    trace is the step's and which of the step's lines it is, known by its class. Not a
    trace builder object per line, which a chunk made and freed ~20k of."""

    line: ClassVar[str]

    def raw_trace(self) -> Trace:
        return {**built(self.trace), "line": self.line}


@dataclass(slots=True)
class _CommissionRaw(_StepRaw):
    line: ClassVar[str] = "commission"


@dataclass(slots=True)
class _AcceleratorRaw(_StepRaw):
    line: ClassVar[str] = "accelerator"


def _series_lines(segment: Segment, raws: Sequence[Raw]) -> list[Line]:
    series: dict[tuple[Kind, str], list[Raw]] = defaultdict(list)
    for raw in raws:
        series[(raw.key.kind, raw.key.rule)].append(raw)
    lines = []
    for group in series.values():
        lines += to_lines(group, plan=segment.version, payout_currency=segment.payout_currency)
    return lines
