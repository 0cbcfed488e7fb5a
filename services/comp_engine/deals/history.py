"""A deal's states in CRM order, from its stored changes: what commission reads. Pure.

The comp engine keeps its own copy of every deal event (services never share tables), and
folds a deal's changes in `OrderKey` order, so duplicates and late arrivals change nothing
once the stream is complete. A change sets the fields it carries; status is the event's own
`status` when it has one, else it follows the stage (`Settings.won_stages` /
`lost_stages`, as the forecast's fold without a configuration); a deletion ends the deal
and a later creation brings it back. A deal is *cancelled* (a clawback trigger) by a
`deal.cancelled` event, or when a change sets its `cancelled_at` property: the contract
ended after the deal was won. The event changes no field: the deal stays won, and the
cancellation stays with its states until the deal leaves won (lost, reopened, deleted), so
a later change to the cancelled deal does not book it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from services.comp_engine.calc.bookings import Cancellation, DealState, SplitShare
from services.comp_engine.calc.slots import setters
from shared.ordering import OrderKey

DELETED = "com.salesops.deal.deleted.v1"
CANCELLED = "com.salesops.deal.cancelled.v1"


@dataclass(frozen=True, slots=True)
class StoredChange:
    key: OrderKey
    event_type: str
    fields: dict[str, Any]


def stored(
    at: datetime, sequence: int, source: str, event_id: str, event_type: str, fields: dict[str, Any]
) -> StoredChange:
    """`StoredChange(OrderKey(at, sequence, source, event_id), event_type, fields)` at a
    third of the cost (set through the slots as `_state` does): a bulk load reads ~20k a
    chunk. `OrderKey` is a named tuple, whose own `__new__` only passes its fields on."""
    change = _new(StoredChange)
    _key(change, _tuple(OrderKey, (at, sequence, source, event_id)))
    _event_type(change, event_type)
    _fields(change, fields)
    return change


@dataclass(frozen=True, slots=True)
class StageNames:
    won: frozenset[str]
    lost: frozenset[str]

    @classmethod
    def of(cls, won: Iterable[str], lost: Iterable[str]) -> StageNames:
        return cls(frozenset(s.lower() for s in won), frozenset(s.lower() for s in lost))

    def status_of(self, stage: str | None) -> str:
        folded = (stage or "").lower()
        return "won" if folded in self.won else "lost" if folded in self.lost else "open"


def states(changes: Sequence[StoredChange], names: StageNames) -> list[DealState]:
    fields: dict[str, Any] = {}
    cancellation: Cancellation | None = None
    found: list[DealState] = []
    # Most deals have one change: nothing to order (a bulk load folds ~20k deals a chunk).
    for change in changes if len(changes) < 2 else sorted(changes, key=_order):
        if change.event_type == DELETED:
            cancellation = None
            found.append(_state(change.key.time, change.key.event_id, fields, "deleted", None))
            continue
        if change.event_type == CANCELLED:
            cancellation = _cancellation(change)
        else:
            fields = {**fields, **change.fields}
            if "stage" in change.fields and "status" not in change.fields:
                fields.pop("status", None)
        status = fields.get("status") or names.status_of(fields.get("stage"))
        if status != "won":
            cancellation = None
        found.append(_state(change.key.time, change.key.event_id, fields, status, cancellation))
    return found


def history_of_one(
    at: datetime,
    sequence: str,
    source: str,
    event_id: str,
    event_type: str,
    fields: dict[str, Any],
    names: StageNames,
) -> list[DealState]:
    """`states` of a deal's only change, given as its stored columns: most deals of a bulk
    load have one change (~18k of ~18.5k a chunk), whose creation or update state needs no
    `StoredChange`, no merged copy of its fields (nothing earlier to merge into, and the
    copy is never written: a stage without a status leaves no status to drop) and no
    `int` of its sequence (nothing to order). A deletion or cancellation folds as usual."""
    if event_type in (DELETED, CANCELLED):
        return states([stored(at, int(sequence), source, event_id, event_type, fields)], names)
    status = fields.get("status") or names.status_of(fields.get("stage"))
    return [_state(at, event_id, fields, status, None)]


_order = attrgetter("key")


def _cancellation(change: StoredChange) -> Cancellation:
    end = change.fields.get("contract_end")
    return Cancellation(
        event_id=change.key.event_id,
        cancelled_at=datetime.fromisoformat(change.fields["cancelled_at"]),
        reason=change.fields["reason"],
        contract_end=None if end is None else date.fromisoformat(end),
    )


def _state(
    at: datetime,
    event_id: str,
    fields: dict[str, Any],
    status: str,
    cancellation: Cancellation | None,
) -> DealState:
    get = fields.get
    properties = get("properties") or {}
    amount = get("amount")
    close = get("close_date")
    splits = get("splits")
    state = _new(DealState)
    _at(state, at)
    _event_id(state, event_id)
    _status(state, status)
    _amount(state, None if amount is None else Decimal(amount))
    _currency(state, get("currency"))
    _owner_id(state, get("owner_id"))
    # `map` rather than a generator: no frame resumed per share, ~3 of ~19 ms a chunk (the
    # ~6.4k deals with splits of bench_main_1m's chunk 5).
    _splits(state, tuple(map(_share, splits)) if splits else ())
    _close_date(state, None if close is None else date.fromisoformat(close))
    _deal_type(state, get("deal_type"))
    _pipeline(state, get("pipeline"))
    _properties(state, properties)
    _cancelled(state, bool(properties.get("cancelled_at")) or cancellation is not None)
    _cancellation_of(state, cancellation)
    return state


def _share(split: dict[str, Any]) -> SplitShare:
    share = _new(SplitShare)
    _rep_id(share, split["rep_id"])
    _percent(share, Decimal(split["percent"]))
    _role(share, split.get("role") or "owner")
    return share


# A bulk load builds ~20k states a chunk (`calc/slots.py`). Every field is set, so a state
# equals one the constructor builds.
_new = object.__new__
(
    _at,
    _event_id,
    _status,
    _amount,
    _currency,
    _owner_id,
    _splits,
    _close_date,
    _deal_type,
    _pipeline,
    _properties,
    _cancelled,
    _cancellation_of,
) = setters(
    DealState,
    "at",
    "event_id",
    "status",
    "amount",
    "currency",
    "owner_id",
    "splits",
    "close_date",
    "deal_type",
    "pipeline",
    "properties",
    "cancelled",
    "cancellation",
)
_key, _event_type, _fields = setters(StoredChange, "key", "event_type", "fields")
_tuple = tuple.__new__
_rep_id, _percent, _role = setters(SplitShare, "rep_id", "percent", "role")


def reps_named(fields: dict[str, Any]) -> set[str]:
    """Every rep a change credits or could credit: its owner and its splits' reps."""
    reps = {fields["owner_id"]} if fields.get("owner_id") else set()
    reps |= {s["rep_id"] for s in fields.get("splits") or ()}
    return reps


def wins(fields: dict[str, Any], names: StageNames) -> bool:
    """Whether a change may leave its deal won (a status of won, or a won stage): the deals
    with no such change have no booking, so no change to them can move a ledger."""
    stage = fields.get("stage")
    return fields.get("status") == "won" or (stage is not None and names.status_of(stage) == "won")
