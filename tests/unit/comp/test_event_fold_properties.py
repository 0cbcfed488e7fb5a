"""Properties of the deal-event fold (`deals/history.py:states`) and of the ledger posted
from it, over generated deal *events*: creations, updates of stage, status, amount,
currency, owner, splits and close date (won -> lost -> won, amounts changed after the
close), deletions and restores, cancellations, delivered in any order and any number of
times, as a CRM and its retries deliver them.

The intake stores a deal change once per (source, event id): a redelivery is dropped by
`ON CONFLICT DO NOTHING` (and by `_unique` within a batch) before anything folds it, so the
store here keeps the first delivery of each identity, as the table does, and the fold
reads what the store holds. Folding is the recalculation's: `history_of_one` for a deal of
one stored change, `states` for the others."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Payment, PlanVersion
from services.comp_engine.calc.posting import Posted, differences
from services.comp_engine.calc.trace_check import recompute
from services.comp_engine.deals.history import (
    CANCELLED,
    DELETED,
    StageNames,
    StoredChange,
    history_of_one,
    reps_named,
    states,
    wins,
)
from services.comp_engine.intake.handler import _fields
from shared.events import DealCancelled, DealCreated, DealDeleted, DealUpdated
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.support.comp_strategies import (
    REPS,
    START,
    TODAY,
    amounts,
    inputs_for,
    payments,
    plans,
    totals,
)
from tests.support.events import CREATED, UPDATED

NAMES = StageNames.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)
CLOSED = {"2027-01", "2027-Q1"}

stages = st.sampled_from(["qualification", "Closed Won", "won", "closedlost", "Lost"])
currencies = st.sampled_from(["USD", "USD", "EUR"])
close_dates = st.integers(min_value=0, max_value=400).map(lambda n: START + timedelta(days=n))
splits = st.sampled_from(
    [
        [],
        [{"rep_id": "r1", "percent": "60", "role": "revenue"}, {"rep_id": "r2", "percent": "40"}],
        [
            {"rep_id": "r1", "percent": "60", "role": "revenue"},
            {"rep_id": "r2", "percent": "40", "role": "revenue"},
            {"rep_id": "r3", "percent": "25", "role": "overlay"},
        ],
        [{"rep_id": "r2", "percent": "100"}, {"rep_id": "r3", "percent": "150", "role": "se"}],
    ]
)

updates = st.fixed_dictionaries(
    {},
    optional={
        "stage": stages,
        "status": st.sampled_from(["open", "won", "lost"]),
        "amount": amounts,
        "currency": currencies,
        "owner_id": st.sampled_from(REPS),
        "splits": splits,
        "close_date": close_dates.map(date.isoformat),
        "properties": st.sampled_from(
            [{}, {"cancelled_at": "2027-09-01T00:00:00+00:00"}, {"region": "emea"}]
        ),
    },
).filter(bool)


@dataclass(frozen=True)
class Delivery:
    deal_id: str
    change: StoredChange


@st.composite
def deal_events(draw: st.DrawFn, deal_id: str) -> list[Delivery]:
    """One deal's changes, each stored as the intake stores it (its payload's `_fields`),
    at CRM times that move forward or stay (ties broken by sequence, source and id); a
    cancellation may be dated back before its event, up to before the win."""
    at = datetime.combine(
        START + timedelta(days=draw(st.integers(min_value=0, max_value=330))),
        datetime.min.time(),
        tzinfo=UTC,
    )
    found = []
    for number in range(draw(st.integers(min_value=1, max_value=8))):
        at += timedelta(hours=draw(st.sampled_from([0, 1, 30, 24 * 7, 24 * 40, 24 * 120])))
        kind = draw(
            st.sampled_from([CREATED, UPDATED, UPDATED, UPDATED, DELETED, CANCELLED])
            if number
            else st.sampled_from([CREATED, CREATED, CREATED, UPDATED])
        )
        payload: DealCreated | DealUpdated | DealDeleted | DealCancelled
        if kind == CREATED:
            body = {
                "stage": draw(stages),
                "amount": draw(amounts),
                "currency": draw(currencies),
                "owner_id": draw(st.sampled_from(REPS)),
                "close_date": draw(close_dates).isoformat(),
                "splits": draw(splits),
            }
            payload = DealCreated(deal_id=deal_id, **body)
        elif kind == UPDATED:
            payload = DealUpdated(deal_id=deal_id, **draw(updates))
        elif kind == DELETED:
            payload = DealDeleted(deal_id=deal_id)
        else:
            payload = DealCancelled(
                deal_id=deal_id,
                cancelled_at=at - timedelta(days=draw(st.sampled_from([0, 0, 30]))),
                reason="churn",
                contract_end=draw(st.none() | close_dates),
            )
        key = OrderKey.of(
            time=at,
            sequence=draw(st.sampled_from([None, 0, 1, 2])),
            source="billing" if kind == CANCELLED else draw(st.sampled_from(["crm", "crm2"])),
            event_id=f"{deal_id}-{number}",
        )
        found.append(Delivery(deal_id, StoredChange(key, kind, _fields(payload))))
    return found


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Delivery], list[Delivery]]:
    """The events of up to four deals in CRM order, and the same events as they arrive:
    shuffled, some delivered more than once."""
    events = [e for n in range(draw(st.integers(1, 4))) for e in draw(deal_events(f"d{n}"))]
    events.sort(key=lambda e: (e.deal_id, e.change.key))
    again = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return events, draw(st.permutations(events + again))


def store(held: dict[tuple[str, str], Delivery], arriving: Iterable[Delivery]) -> None:
    """The intake: the first delivery of an identity is kept, a redelivery dropped."""
    for delivery in arriving:
        held.setdefault((delivery.change.key.source, delivery.change.key.event_id), delivery)


def by_deal(deliveries: Iterable[Delivery]) -> dict[str, list[StoredChange]]:
    found: dict[str, list[StoredChange]] = defaultdict(list)
    for delivery in deliveries:
        found[delivery.deal_id].append(delivery.change)
    return found


def fold(changes: Sequence[StoredChange]) -> list[DealState]:
    """The recalculation's fold (`recalc/repository.py:_histories`)."""
    if len(changes) == 1:
        (c,) = changes
        k = c.key
        return history_of_one(
            k.time, str(k.sequence), k.source, k.event_id, c.event_type, c.fields, NAMES
        )
    return states(changes, NAMES)


def histories(deliveries: Iterable[Delivery]) -> dict[str, list[DealState]]:
    return {deal_id: fold(changes) for deal_id, changes in by_deal(deliveries).items()}


@settings(max_examples=300, deadline=None)
@given(streams())
def test_the_fold_reads_the_stream_not_its_arrival(
    stream: tuple[list[Delivery], list[Delivery]],
) -> None:
    in_order, arrived = stream
    held: dict[tuple[str, str], Delivery] = {}
    store(held, arrived)
    assert len(held) == len(in_order)
    expected = {d: states(c, NAMES) for d, c in by_deal(in_order).items()}
    assert {d: states(c, NAMES) for d, c in by_deal(held.values()).items()} == expected
    assert histories(held.values()) == expected


@settings(max_examples=120, deadline=None)
@given(
    plans(min_tier_bounds=1, with_clawback=True, with_split_roles=True),
    streams(),
    payments(),
)
def test_a_ledger_posted_event_by_event_is_the_one_computed_from_scratch(
    version: PlanVersion, stream: tuple[list[Delivery], list[Delivery]], paid: list[Payment]
) -> None:
    """After each arrival the recalculation posts what changed; once every event has
    arrived the ledger holds what a computation over the whole stream in CRM order holds,
    every line posted on the way redoes its amount from its trace, and replaying the whole
    stream (in CRM order this time) posts nothing."""
    in_order, arrived = stream
    inputs = inputs_for(version, paid)
    held: dict[tuple[str, str], Delivery] = {}
    ledger: list[Posted] = []
    for delivery in arrived:
        store(held, [delivery])
        result = compute(histories(held.values()), inputs, today=TODAY)
        for posting in differences(result.lines, ledger, closed=CLOSED):
            assert recompute(posting.trace) == posting.amount, (posting.key, posting.trace)
            ledger.append(Posted(posting.key, posting.amount, posting.currency))
    scratch = compute(
        {d: states(c, NAMES) for d, c in by_deal(in_order).items()}, inputs, today=TODAY
    )
    for line in scratch.lines:
        assert recompute(line.trace) == line.amount, (line.key, line.trace)
    assert totals(ledger) == totals(scratch.lines)
    store(held, in_order)
    replayed = compute(histories(held.values()), inputs, today=TODAY)
    assert differences(replayed.lines, ledger, closed=CLOSED) == []


@settings(max_examples=120, deadline=None)
@given(
    plans(min_tier_bounds=1, with_clawback=True, with_split_roles=True),
    streams(),
    payments(),
)
def test_the_reps_the_intake_marks_are_every_rep_an_event_moves(
    version: PlanVersion, stream: tuple[list[Delivery], list[Delivery]], paid: list[Payment]
) -> None:
    """The recalculation computes only the reps the intake marked dirty (`apply_deals`: a
    new change names its owner's and splits' reps for the deal; if a stored change of the
    deal ever won it, every rep the deal ever named is marked), starting from ledgers
    posted when the reps were assigned (draws owe without deals). Once every event has
    arrived the ledger equals a computation from scratch: no event moved a rep it did not
    mark."""
    in_order, arrived = stream
    inputs = inputs_for(version, paid)
    ledger = [
        Posted(p.key, p.amount, p.currency)
        for p in differences(compute({}, inputs, today=TODAY).lines, [], closed=CLOSED)
    ]
    held: dict[tuple[str, str], Delivery] = {}
    named: dict[str, set[str]] = defaultdict(set)
    for delivery in arrived:
        identity = (delivery.change.key.source, delivery.change.key.event_id)
        if identity in held:
            continue
        store(held, [delivery])
        named[delivery.deal_id] |= reps_named(delivery.change.fields)
        stored = by_deal(held.values())[delivery.deal_id]
        if not any(wins(c.fields, NAMES) for c in stored):
            continue
        dirty = named[delivery.deal_id]
        result = compute(histories(held.values()), inputs, today=TODAY, only=dirty)
        theirs = [p for p in ledger if p.key.rep_id in dirty]
        ledger += [
            Posted(p.key, p.amount, p.currency)
            for p in differences(result.lines, theirs, closed=CLOSED)
        ]
    scratch = compute(
        {d: states(c, NAMES) for d, c in by_deal(in_order).items()}, inputs, today=TODAY
    )
    assert totals(ledger) == totals(scratch.lines)
