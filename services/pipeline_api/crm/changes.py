"""What every connector produces: a CRM's change, parsed but not yet mapped.

Parsers know their CRM's wire format and field names; they do not know our stages, reps
or currencies. They output field values under canonical names, leaving CRM ids raw where
a source's mapping must translate them (`stage`, `pipeline`, `owner_id`, `deal_type`,
activity `rep_id`). `mapping.py` finishes the job, so that an unmapped id can be parked
and replayed later instead of being guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DealOp = Literal["created", "updated", "deleted", "restored"]
ActivityOp = Literal["logged", "deleted"]
ActivityKind = Literal["call", "email", "meeting", "task", "note"]


@dataclass(frozen=True)
class DealChange:
    """One change to one CRM deal.

    `event_key` identifies the change within its source so retries dedupe; `occurred_at`
    (CRM time) and `sequence` order it. `fields` uses canonical names (see
    shared/events.py DealFields) with raw CRM ids for the mapped ones; `properties` holds
    custom CRM properties by their CRM name, before the source's keep-list filters them.
    """

    crm_id: str
    event_key: str
    occurred_at: datetime
    op: DealOp
    sequence: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    merged_into: str | None = None


@dataclass(frozen=True)
class ActivityChange:
    """One activity as the CRM has it now (`op` "logged": a creation, an edit, a restore),
    or its deletion.

    A deletion carries only what keys and orders it: `occurred_at` is when the CRM deleted
    the activity, and `kind` is what the payload tells of it, which the deleted event does
    not use.
    """

    crm_id: str
    event_key: str
    occurred_at: datetime
    kind: ActivityKind
    deal_crm_id: str | None = None
    account_id: str | None = None
    rep_crm_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    changed_at: datetime | None = None
    """When the CRM last changed the record (orders versions); `occurred_at` is when the
    activity itself happened. None means the same instant."""
    op: ActivityOp = "logged"


@dataclass(frozen=True)
class ResyncRequest:
    """A change the payload cannot express (a gap, an overflow, a merge, an edit named but
    not described): fetch from the CRM's API. `crm_ids` empty means every deal of the
    source, or every activity of `activity_kind`."""

    reason: str
    crm_ids: tuple[str, ...] = ()
    activity_kind: ActivityKind | None = None
    """Set when the records to fetch are activities of this kind rather than deals."""
    values: dict[str, Any] | None = None
    """What the payload did say of the record, if anything (a Salesforce Outbound
    notification without a time): when the source cannot re-sync, the request is parked
    with these values rather than queued as a job bound to fail."""


@dataclass(frozen=True)
class Unsupported:
    """A payload item we do not handle: answered 2xx (so the CRM does not ban us) and
    recorded in the DLQ with `reason`."""

    reason: str
    item: Any


@dataclass(frozen=True)
class Ignored:
    """A payload item that changes nothing we keep (a custom field no source keeps, a
    secondary company, an organisation edit, a portal we have no source for): answered
    2xx, counted, and noted with `reason` on the archived request, but not parked, since
    an operator has nothing to do about it."""

    reason: str


@dataclass(frozen=True)
class AccountMerged:
    """The CRM merged account `merged_id` into `survivor_id`: every deal whose account is
    the merged one now belongs to the survivor, and so does every later change naming it.
    The payload cannot name those deals: accounts/merges.py remembers the merge and finds
    them in the event log."""

    merged_id: str
    survivor_id: str
    event_key: str
    occurred_at: datetime


CrmChange = DealChange | ActivityChange | ResyncRequest | Unsupported | Ignored | AccountMerged


def to_json(change: DealChange | ActivityChange) -> dict[str, Any]:
    """A change as stored while parked, so it can be mapped again later."""
    data = {k: getattr(change, k) for k in change.__dataclass_fields__}
    data["occurred_at"] = change.occurred_at.isoformat()
    if isinstance(change, ActivityChange) and change.changed_at is not None:
        data["changed_at"] = change.changed_at.isoformat()
    data["type"] = "deal" if isinstance(change, DealChange) else "activity"
    return data


def from_json(data: dict[str, Any]) -> DealChange | ActivityChange:
    values = {k: v for k, v in data.items() if k != "type"}
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    if values.get("changed_at"):
        values["changed_at"] = datetime.fromisoformat(values["changed_at"])
    return DealChange(**values) if data["type"] == "deal" else ActivityChange(**values)
