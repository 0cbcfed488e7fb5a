"""The consumer base's pure part: what a batch becomes before any I/O (shared.dispatch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import consumer_spec
from shared.dispatch import (
    Applied,
    DeadLetter,
    Dispatch,
    Handler,
    Record,
    next_offsets,
    sort_batch,
)
from shared.events import CanonicalEvent
from tests.support.events import CREATED, UPDATED, event

LOGGED = "com.salesops.activity.logged.v1"
REP = "com.salesops.rep.upserted.v1"
TIME = "2026-06-01T00:00:00Z"


async def deals(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    raise AssertionError("sorting a batch calls no handler")


async def activities(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    raise AssertionError("sorting a batch calls no handler")


DISPATCH: Dispatch = {CREATED: deals, UPDATED: deals, LOGGED: activities}


def deal_event(deal_id: str, type_: str = CREATED) -> dict[str, Any]:
    return event(type_, {"deal_id": deal_id, "name": "n", "owner_id": "r", "stage": "s"}, time=TIME)


def activity_event(activity_id: str) -> dict[str, Any]:
    data = {"activity_id": activity_id, "kind": "call", "occurred_at": TIME, "properties": {}}
    return event(LOGGED, data, time=TIME)


def records(*values: bytes | dict[str, Any], topic: str = "t") -> list[Record]:
    return [
        Record(topic, 0, n, v if isinstance(v, bytes) else orjson.dumps(v))
        for n, v in enumerate(values)
    ]


def ids(events: Sequence[CanonicalEvent]) -> list[str]:
    return [e.envelope.id for e in events]


def test_each_handler_gets_its_events_in_read_order_in_the_order_of_the_table() -> None:
    a1, d1, a2, d2 = activity_event("a1"), deal_event("d1"), activity_event("a2"), deal_event("d2")
    batch = sort_batch(records(a1, d1, a2, d2), DISPATCH)
    assert [(g.handler, ids(g.events)) for g in batch.groups] == [
        (deals, [d1["id"], d2["id"]]),
        (activities, [a1["id"], a2["id"]]),
    ]
    assert batch.dead_letters == []


def test_one_handler_for_several_types_is_one_group() -> None:
    updated, created = deal_event("d1", UPDATED), deal_event("d1")
    batch = sort_batch(records(updated, created), DISPATCH)
    assert len(batch.groups) == 1
    [group] = batch.groups
    assert group.handler is deals
    assert ids(group.events) == [updated["id"], created["id"]]


def test_a_handler_with_nothing_to_do_is_not_a_group() -> None:
    batch = sort_batch(records(activity_event("a1")), DISPATCH)
    handlers: list[Handler] = [g.handler for g in batch.groups]
    assert handlers == [activities]


BROKEN_DEAL = event(
    CREATED,
    {"deal_id": "d", "name": "n", "owner_id": "r", "stage": "s", "amount": "1"},
    time=TIME,
    id="broken-1",
    source="test://broken",
)
UNHANDLED = event(REP, {"rep_id": "rep-1", "name": "Ana"}, time=TIME, id="rep-1", source="test://r")


@pytest.mark.parametrize(
    ("value", "reason", "identity"),
    [
        pytest.param(b"{not json", "value is not JSON", (None, None), id="not-json"),
        pytest.param(
            b"[1, 2]", "an event must be a JSON object", (None, None), id="json-not-an-object"
        ),
        pytest.param(
            BROKEN_DEAL, "currency is required", ("test://broken", "broken-1"), id="invalid"
        ),
        pytest.param(
            UNHANDLED,
            f"type: {REP} is not an event this consumer handles",
            ("test://r", "rep-1"),
            id="no-handler",
        ),
    ],
)
def test_what_cannot_be_applied_is_a_dead_letter_with_its_reason_and_identity(
    value: bytes | dict[str, Any], reason: str, identity: tuple[str | None, str | None]
) -> None:
    good = deal_event("d1")
    batch = sort_batch(records(good, value, topic="deals"), DISPATCH)
    assert [ids(g.events) for g in batch.groups] == [[good["id"]]], "the rest is applied"
    [letter] = batch.dead_letters
    assert (letter.topic, letter.partition, letter.offset) == ("deals", 0, 1)
    assert reason in letter.reason
    assert (letter.event_source, letter.event_id) == identity
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    assert letter.payload == raw.decode()


def test_a_dead_letter_keeps_a_payload_that_is_not_utf8() -> None:
    letter = DeadLetter.of(Record("t", 0, 7, b"\xff not json"), "value is not JSON")
    assert letter.payload == "\ufffd not json"
    assert (letter.event_source, letter.event_id) == (None, None)


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        pytest.param([], {}, id="nothing-read"),
        pytest.param([("a", 0, 4)], {("a", 0): 5}, id="one-record"),
        pytest.param(
            [("a", 0, 7), ("a", 0, 3), ("a", 1, 0), ("b", 0, 9)],
            {("a", 0): 8, ("a", 1): 1, ("b", 0): 10},
            id="the-greatest-offset-per-partition",
        ),
    ],
)
def test_next_offsets_are_one_past_the_last_record_of_each_partition(
    read: list[tuple[str, int, int]], expected: dict[tuple[str, int], int]
) -> None:
    assert next_offsets([Record(t, p, o, b"") for t, p, o in read]) == expected


def test_the_forecast_worker_dead_letters_a_type_it_does_not_handle_naming_what_it_takes() -> None:
    """Its reason names what it takes. Reference events are its own now (issue 8), so the
    type without a handler is made by leaving the rep handler out of its table."""
    spec = consumer_spec(StageRules.of(["won"], ["lost"]))
    without_reps = {t: h for t, h in spec.dispatch.items() if t != REP}
    batch = sort_batch(records(UNHANDLED), without_reps, handles=spec.handles, ignores=spec.ignores)
    assert [letter.reason for letter in batch.dead_letters] == [
        f"type: {REP} is not a deal, activity or reference event"
    ]


INVOICE = "com.salesops.invoice.paid.v1"
PAID = event(
    INVOICE,
    {"invoice_id": "inv-1", "amount": "9.99", "currency": "USD", "paid_at": TIME},
    time=TIME,
)


def test_an_ignored_type_is_counted_not_dead_lettered_and_the_rest_applies() -> None:
    good = deal_event("d1")
    batch = sort_batch(records(PAID, good, PAID), DISPATCH, ignores=frozenset({INVOICE}))
    assert batch.dead_letters == []
    assert batch.ignored == 2
    assert [ids(g.events) for g in batch.groups] == [[good["id"]]]


def test_an_ignored_type_that_does_not_validate_is_still_a_dead_letter() -> None:
    broken = {**PAID, "data": {"invoice_id": "inv-1"}}
    batch = sort_batch(records(broken), DISPATCH, ignores=frozenset({INVOICE}))
    assert batch.ignored == 0
    assert len(batch.dead_letters) == 1


def test_the_forecast_worker_takes_every_reference_type_but_invoices_which_it_ignores() -> None:
    spec = consumer_spec(StageRules.of(["won"], ["lost"]))
    batch = sort_batch(
        records(UNHANDLED, PAID), spec.dispatch, handles=spec.handles, ignores=spec.ignores
    )
    assert batch.dead_letters == []
    assert batch.ignored == 1
    assert [ids(g.events) for g in batch.groups] == [["rep-1"]]
    assert spec.ignores == frozenset({INVOICE})


def test_a_type_cannot_be_both_handled_and_ignored() -> None:
    spec = consumer_spec(StageRules.of(["won"], ["lost"]))
    with pytest.raises(ValueError, match="both handled and ignored"):
        replace(spec, ignores=frozenset({CREATED}))
