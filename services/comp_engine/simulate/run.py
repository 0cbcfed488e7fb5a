"""Simulation: a plan document run over deals without writing anything, through the same
`engine.compute` the ledger uses, so its lines and traces are the ones the ledger would
hold. Building the inputs from a request is pure; the stored mode reads the stored deals
and inputs the recalculation reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import Waiting
from services.comp_engine.calc.inputs import (
    Assignment,
    FxRate,
    FxTable,
    Inputs,
    Payment,
    PlanVersion,
    Quota,
)
from services.comp_engine.calc.lines import Kind, Line
from services.comp_engine.deals.history import StageNames, StoredChange, states
from services.comp_engine.simulate.schemas import InlineIn, RepTotal, SimulateIn
from shared.ordering import OrderKey
from shared.periods import parse_period

SIMULATED = "simulated"
BANDS = (
    (Decimal(50), "<50"),
    (Decimal(80), "50-80"),
    (Decimal(100), "80-100"),
    (Decimal(120), "100-120"),
)
TYPES = {
    "created": "com.salesops.deal.created.v1",
    "updated": "com.salesops.deal.updated.v1",
    "deleted": "com.salesops.deal.deleted.v1",
    "cancelled": "com.salesops.deal.cancelled.v1",
}


def draft(request: SimulateIn) -> PlanVersion:
    return PlanVersion(SIMULATED, 1, request.effective_from, request.plan)


def inline_inputs(
    body: InlineIn, version: PlanVersion, names: StageNames
) -> tuple[dict[str, list[DealState]], Inputs]:
    histories = {}
    for deal in body.deals:
        changes = [
            StoredChange(
                OrderKey(c.time, number, "simulate", f"{deal.deal_id}#{number}"),
                TYPES[c.type],
                c.stored_fields(),
            )
            for number, c in enumerate(deal.changes)
        ]
        histories[deal.deal_id] = states(changes, names)
    inputs = Inputs(
        plans={SIMULATED: [version]},
        assignments=[
            Assignment(a.rep_id, SIMULATED, a.start, a.end, a.payout_currency)
            for a in body.assignments
        ],
        quotas=[
            Quota(q.rep_id, q.period_start, q.period_end, q.amount, q.currency) for q in body.quotas
        ],
        fx=FxTable([FxRate(r.base, r.quote, r.day, r.rate) for r in body.fx_rates]),
        payments=[
            Payment(p.deal_id, p.invoice_id, p.paid_at, p.amount, p.currency) for p in body.payments
        ],
    )
    return histories, inputs


def under_draft(inputs: Inputs, version: PlanVersion, reps: Iterable[str]) -> Inputs:
    """`inputs` with `reps` on the draft plan over their own assignments' dates."""
    chosen = set(reps)
    assignments = [
        replace(a, plan_id=SIMULATED) if a.rep_id in chosen else a for a in inputs.assignments
    ]
    return replace(inputs, plans={**inputs.plans, SIMULATED: [version]}, assignments=assignments)


def in_range(lines: Sequence[Line], start: date, end: date) -> list[Line]:
    """The lines of periods overlapping [start, end); each period label is judged once (a
    year of a large team has a million lines over a few labels)."""
    inside: dict[str, bool] = {}
    found = []
    for line in lines:
        label = line.key.period
        if label not in inside:
            inside[label] = overlaps(label, start, end)
        if inside[label]:
            found.append(line)
    return found


def overlaps(label: str, start: date, end: date) -> bool:
    """Whether the period `label` overlaps [start, end)."""
    period = parse_period(label)
    return period.start < end and period.end > start


def totals(lines: Iterable[Line]) -> dict[tuple[str, str], Decimal]:
    found: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        found[(line.key.rep_id, line.currency)] += line.amount
    return found


def rep_totals(
    simulated: dict[tuple[str, str], Decimal], current: dict[tuple[str, str], Decimal] | None
) -> list[RepTotal]:
    keys = sorted(set(simulated) | set(current or {}))
    return [
        RepTotal(
            rep_id=rep,
            currency=currency,
            simulated=simulated.get((rep, currency), Decimal(0)),
            current=None if current is None else current.get((rep, currency), Decimal(0)),
            difference=None
            if current is None
            else simulated.get((rep, currency), Decimal(0))
            - current.get((rep, currency), Decimal(0)),
        )
        for rep, currency in keys
    ]


def attainment_bands(lines: Iterable[Line]) -> dict[str, int]:
    """Each rep-period's final attainment on attainment tables, counted by band: the last
    commission line's attainment per rep, period and component (the line's rule), read
    from the line rather than its trace so no trace is built."""
    final: dict[tuple[str, str, str], Decimal] = {}
    for line in lines:
        if line.key.kind is Kind.COMMISSION and line.attainment is not None:
            final[(line.key.rep_id, line.key.period, line.key.rule)] = line.attainment
    counts = {label: 0 for _, label in BANDS} | {"120+": 0}
    for value in final.values():
        label = next((lbl for top, lbl in BANDS if value < top), "120+")
        counts[label] += 1
    return counts


def waiting_json(waiting: Iterable[Waiting]) -> list[dict[str, str]]:
    return [{"rep_id": w.rep_id, "subject": w.subject, "reason": w.reason} for w in waiting]


def line_json(line: Line) -> dict[str, object]:
    k = line.key
    return {
        "rep_id": k.rep_id,
        "period": k.period,
        "kind": k.kind.value,
        "rule": k.rule,
        "deal_id": k.deal_id,
        "booking": k.booking,
        "role": k.role,
        "amount": str(line.amount),
        "currency": line.currency,
        "trace": line.trace,
    }
