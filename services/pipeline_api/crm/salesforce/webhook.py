"""Salesforce Change Data Capture events and Outbound Messages as `CrmChange`s. Pure.

What Salesforce really sends (../shared/reference/crm-webhooks.md, section 2):

* CDC: a `ChangeEventHeader` plus record fields. Over CometD an UPDATE carries only the
  changed fields, named in `changedFields`; over the Pub/Sub API every field is present
  (unchanged ones null) and `changedFields`/`nulledFields`/`diffFields` are hex bitmaps
  over the Avro schema's field order (forcedotcom/pub-sub-api `ChangeEventHeaderUtility.py`
  and `EventParser.java`: bit i set means top-level field i; `"N-0x.."` is a bitmap over
  the fields of the compound field at position N). One event may cover several records
  (merged events), gaps and overflows carry no data and must be re-fetched, and
  `changeOrigin` names the API client that made the change, so our own write-backs can be
  skipped instead of echoed.
* Outbound Messages: a SOAP `notifications` call with up to 100 `Notification`s, each the
  record's latest state; the listener must answer with `<Ack>true</Ack>` or Salesforce
  retries for 24 hours.

Numbers arrive already parsed with `parse_float=Decimal`, so amounts stay exact and a
64-bit `commitNumber` stays an exact int. Nothing here converts through `float`: money
that already is a float is refused, because its cents may already be wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from services.pipeline_api.crm.changes import (
    ActivityChange,
    ActivityKind,
    CrmChange,
    DealChange,
    DealOp,
    Ignored,
    ResyncRequest,
    Unsupported,
)
from shared.money import MoneyError, amount_text, number_text

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element  # the type only; parsing is defusedxml's

HEADER = "ChangeEventHeader"
DEAL_ENTITY = "Opportunity"
# Activity entities, with the kind a re-sync of their records asks for (`activity_entity`
# maps it back).
ACTIVITY_ENTITIES: dict[str, ActivityKind] = {"Task": "task", "Event": "meeting"}
DEAL_ID_PREFIX = "006"
GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"})
MAX_EVENT_KEY = 255
MAX_NOTIFICATIONS = 100
MAX_FIELD_DEPTH = 8
"""Deepest nesting read inside an sObject: real fields are flat or one level (addresses)."""

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
# sObject fields are read by local name, so an enterprise-WSDL message
# (urn:sobject.enterprise.soap.sforce.com) and a partner-WSDL one
# (urn:sobject.partner.soap.sforce.com) read the same.
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Fields Salesforce maintains itself: they say when or by whom, not what the deal is, and
# LastViewedDate/LastReferencedDate change whenever someone merely looks at the record.
SYSTEM_FIELDS = frozenset(
    {
        HEADER,
        "Id",
        "IsDeleted",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "LastViewedDate",
        "LastReferencedDate",
    }
)
# Opportunity fields copied as they are (ids stay raw: crm/mapping.py translates them).
DIRECT_FIELDS = {
    "Name": "name",
    "AccountId": "account_id",
    "OwnerId": "owner_id",
    "CurrencyIsoCode": "currency",
    "StageName": "stage",
    "Type": "deal_type",
}
# ForecastCategoryName values (labels, "Best Case") and ForecastCategory API values
# ("BestCase", "Forecast" for Commit), compared without spaces and case.
FORECAST_CATEGORIES = {
    "pipeline": "pipeline",
    "bestcase": "best_case",
    "commit": "commit",
    "forecast": "commit",
    "closed": "closed",
    "omitted": "omitted",
}
FORECAST_FIELDS = ("ForecastCategoryName", "ForecastCategory")
TASK_KINDS: dict[str, ActivityKind] = {"Call": "call", "Email": "email", "ListEmail": "email"}

_RECORD_ID = re.compile(r"[A-Za-z0-9]{1,64}\*?")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
"""An integer as text: ASCII digits (`str.isdigit` passes `²`, which int() refuses), and
no more than an epoch in milliseconds or microseconds needs."""
_TOP_BITMAP = re.compile(r"0x([0-9A-Fa-f]+)")
_NESTED_BITMAP = re.compile(r"([0-9]+)-0x([0-9A-Fa-f]+)")


class CdcError(ValueError):
    """The body is not a Salesforce change event, nor a batch of them (the route's 400)."""


class OutboundError(ValueError):
    """The body is not a usable Outbound Message SOAP envelope (the route's 400)."""


@dataclass(frozen=True)
class OutboundBatch:
    """One Outbound Message delivery. `organization_id` is what the route checks against
    the source's account, since Outbound Messages carry no signature."""

    organization_id: str
    action_id: str | None
    changes: list[CrmChange] = field(default_factory=list)


@dataclass(frozen=True)
class _Header:
    entity: str
    change_type: str
    record_ids: tuple[str, ...]
    transaction_key: str
    sequence: int
    committed_at: datetime
    origin: str | None
    changed: tuple[str, ...] | None
    nulled: tuple[str, ...]
    diff: tuple[str, ...]


# --- CDC: envelopes ---------------------------------------------------------------------


def parse_cdc(
    body: Any,
    *,
    own_client_ids: frozenset[str] = frozenset(),
    field_lists: Mapping[str, Sequence[str]] | None = None,
) -> list[CrmChange]:
    """Parse change events in any shape they reach us in, in the order received.

    Accepted: a CometD message (`{"data": {"schema", "payload", "event"}, "channel"}`), an
    EventBridge event (AppFlow puts the payload in `detail`, Event Relay in
    `detail.payload`), a bare payload with `ChangeEventHeader` (a decoded Pub/Sub event),
    `{"payload": ...}`, a JSON array of any of these, or `{"events": [...]}`.

    `own_client_ids` are the `client=` values of `changeOrigin` that mark our own API
    writes; their events are dropped, so a write-back is not echoed as a CRM change.
    `field_lists` maps an entity name to its change event's top-level Avro field names in
    schema order (position 0 is `ChangeEventHeader`), used to decode Pub/Sub bitmaps.

    Raises `CdcError` when the body, or an item of it, is not a change event at all; an
    event for an entity or change type we do not handle is returned as `Unsupported`. An
    UPDATE that changed only system fields (LastModifiedDate...) is `Ignored`: there is
    nothing to record and nothing for an operator to do.
    """
    lists = field_lists or {}
    out: list[CrmChange] = []
    for where, item in _items(body):
        payload = _unwrap(where, item)
        if isinstance(payload, Unsupported):
            out.append(payload)
            continue
        out.extend(_event(where, payload, item, own_client_ids, lists))
    return out


def _items(body: Any) -> list[tuple[str, Any]]:
    if isinstance(body, list):
        return [(f"[{n}]", item) for n, item in enumerate(body)]
    if isinstance(body, dict):
        if "events" in body and not _is_event(body):
            events = body["events"]
            if not isinstance(events, list):
                raise CdcError("events: must be a JSON array of change events")
            return [(f"events[{n}]", item) for n, item in enumerate(events)]
        return [("body", body)]
    raise CdcError(f"a change event body is a JSON object or array, got {type(body).__name__}")


def _is_event(item: dict[str, Any]) -> bool:
    return any(k in item for k in (HEADER, "data", "detail", "payload"))


def _unwrap(where: str, item: Any) -> dict[str, Any] | Unsupported:
    """The payload (header plus record fields) inside one item, whatever its envelope."""
    if not isinstance(item, dict):
        raise CdcError(f"{where}: a change event is a JSON object, got {type(item).__name__}")
    if HEADER in item:
        return item
    data = item.get("data")
    if isinstance(data, dict) and "payload" in data:
        payload = data["payload"]
        if not isinstance(payload, dict):
            raise CdcError(f"{where}.data.payload: must be a JSON object")
        if HEADER in payload:
            return payload
        channel = item.get("channel")
        return Unsupported(
            f"CometD message on channel {channel!r} is not a change event (no {HEADER})",
            _json_safe(item),
        )
    detail = item.get("detail")
    if isinstance(detail, dict):
        if HEADER in detail:
            return detail
        inner = detail.get("payload")
        if isinstance(inner, dict) and HEADER in inner:
            return inner
        return Unsupported(
            f"EventBridge event {item.get('detail-type')!r} carries no Salesforce change event",
            _json_safe(item),
        )
    payload = item.get("payload")
    if isinstance(payload, dict) and HEADER in payload:
        return payload
    raise CdcError(
        f"{where}: not a Salesforce change event (expected a CometD message, an EventBridge "
        f"event or a payload with {HEADER})"
    )


# --- CDC: header -----------------------------------------------------------------------


def _header(where: str, payload: dict[str, Any]) -> _Header:
    raw = payload.get(HEADER)
    at = f"{where}.{HEADER}"
    if not isinstance(raw, dict):
        raise CdcError(f"{at}: must be a JSON object")
    entity = raw.get("entityName")
    change_type = raw.get("changeType")
    if not isinstance(entity, str) or not entity:
        raise CdcError(f"{at}.entityName: must be a non-empty string")
    if not isinstance(change_type, str) or not change_type:
        raise CdcError(f"{at}.changeType: must be a non-empty string")
    ids = raw.get("recordIds")
    if not isinstance(ids, list) or not ids:
        raise CdcError(f"{at}.recordIds: must be a non-empty array")
    for n, rid in enumerate(ids):
        if not isinstance(rid, str) or not _RECORD_ID.fullmatch(rid):
            raise CdcError(f"{at}.recordIds[{n}]: {rid!r} is not a Salesforce record id")
    key = raw.get("transactionKey")
    if not isinstance(key, str) or not key:
        raise CdcError(f"{at}.transactionKey: must be a non-empty string")
    sequence = _integer(raw.get("sequenceNumber"))
    if sequence is None or sequence < 0:
        raise CdcError(f"{at}.sequenceNumber: must be a non-negative integer")
    millis = _integer(raw.get("commitTimestamp"))
    committed = _from_millis(millis) if millis is not None else None
    if committed is None:
        raise CdcError(f"{at}.commitTimestamp: must be epoch milliseconds")
    origin = raw.get("changeOrigin")
    # commitNumber is left untouched: Salesforce calls it diagnostic and not unique, and
    # it can exceed 2**63, so it is neither parsed nor used for ordering.
    return _Header(
        entity=entity,
        change_type=change_type,
        record_ids=tuple(dict.fromkeys(ids)),
        transaction_key=key,
        sequence=sequence,
        committed_at=committed,
        origin=origin if isinstance(origin, str) else None,
        changed=_names(at, raw, "changedFields", empty_is_none=True),
        nulled=_names(at, raw, "nulledFields") or (),
        diff=_names(at, raw, "diffFields") or (),
    )


def _names(
    at: str, header: Mapping[str, Any], name: str, *, empty_is_none: bool = False
) -> tuple[str, ...] | None:
    value = header.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CdcError(f"{at}.{name}: must be an array of strings")
    if not value and empty_is_none:
        return None
    return tuple(value)


def _client_id(origin: str | None) -> str | None:
    """`client=<id>` of `com/salesforce/api/<api>/<ver>;client=<id>`, if any."""
    if not origin:
        return None
    for part in origin.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip() == "client":
            return value.strip()
    return None


def _is_own(origin: str | None, own_client_ids: frozenset[str]) -> bool:
    client = _client_id(origin)
    if not client:
        return False
    # AppFlow's example shows "client=SfdcInternalAPI/": match with or without the slash.
    return client in own_client_ids or client.rstrip("/") in own_client_ids


def _event_key(header: _Header, record_id: str) -> str:
    """Deterministic per (transaction, position, record): a replay yields the same key."""
    key = f"sfcdc:{header.transaction_key}:{header.sequence}:{record_id}"
    if len(key) > MAX_EVENT_KEY:
        # Canonical ids are at most 256 characters; an unexpectedly long transaction key
        # must not make the event unstorable, so it is hashed, still deterministically.
        key = "sfcdc:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


# --- CDC: one event --------------------------------------------------------------------


def _event(
    where: str,
    payload: dict[str, Any],
    item: Any,
    own_client_ids: frozenset[str],
    field_lists: Mapping[str, Sequence[str]],
) -> list[CrmChange]:
    header = _header(where, payload)
    if _is_own(header.origin, own_client_ids):
        return []
    entity, change_type = header.entity, header.change_type
    if entity != DEAL_ENTITY and entity not in ACTIVITY_ENTITIES:
        return [
            Unsupported(
                f"Salesforce {entity} change events are not handled ({change_type})",
                _json_safe(item),
            )
        ]
    if change_type == "SNAPSHOT":
        return [
            Unsupported(
                f"Salesforce SNAPSHOT change events are reserved and not handled ({entity})",
                _json_safe(item),
            )
        ]
    if entity in ACTIVITY_ENTITIES:
        return _activity_event(header, payload, item)
    return _deal_event(header, payload, item, field_lists.get(entity))


def _deal_event(
    header: _Header, payload: dict[str, Any], item: Any, field_list: Sequence[str] | None
) -> list[CrmChange]:
    change_type = header.change_type
    if change_type == "GAP_OVERFLOW":
        return [
            ResyncRequest(
                "Salesforce GAP_OVERFLOW: a transaction changed over 100,000 Opportunity "
                f"records (transaction {header.transaction_key}); re-sync every deal"
            )
        ]
    wildcards = [r for r in header.record_ids if r.endswith("*")]
    if wildcards:
        return [
            ResyncRequest(
                f"Salesforce {change_type} with wildcard record ids {wildcards} (a field "
                "type conversion touched every Opportunity); re-sync every deal"
            )
        ]
    if change_type in GAP_TYPES:
        return [
            ResyncRequest(
                f"Salesforce {change_type}: the change was not captured (too large, a "
                "database-level change or an internal error); re-fetch the records",
                header.record_ids,
            )
        ]
    ops: dict[str, DealOp] = {
        "CREATE": "created",
        "UPDATE": "updated",
        "DELETE": "deleted",
        "UNDELETE": "restored",
    }
    op = ops.get(change_type)
    if op is None:
        return [
            Unsupported(
                f"Salesforce Opportunity changeType {change_type!r} is not handled",
                _json_safe(item),
            )
        ]
    fields: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    if op != "deleted":
        values = _changed_values(header, payload, field_list)
        if isinstance(values, str):
            return [ResyncRequest(values, header.record_ids)]
        fields, properties = _deal_fields(values, delta=op == "updated")
        if op == "updated" and not fields and not properties:
            return [Ignored(f"Salesforce {header.entity} UPDATE changed only system fields")]
    return [
        DealChange(
            crm_id=record_id,
            event_key=_event_key(header, record_id),
            occurred_at=header.committed_at,
            op=op,
            sequence=header.sequence,
            fields=dict(fields),
            properties=dict(properties),
        )
        for record_id in header.record_ids
    ]


def _present(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != HEADER and v is not None}


def _changed_values(
    header: _Header, payload: Mapping[str, Any], field_list: Sequence[str] | None
) -> dict[str, Any] | str:
    """The record fields an event sets, or why they cannot be known (a re-sync reason).

    CREATE and UNDELETE carry the record: every non-null field. An UPDATE carries what
    `changedFields` names (plus `nulledFields`), including fields set to null; fields sent
    as a diff (`diffFields`, long text over Pub/Sub) are left out, because their value is a
    patch, not the text. Without `changedFields` (some relays drop it), the non-null fields
    present are the best available answer.
    """
    if header.change_type != "UPDATE" or header.changed is None:
        return _present(payload)
    entries = (*header.changed, *header.nulled)
    decoded = _decode_names(header.entity, entries, field_list)
    if isinstance(decoded, str):
        return decoded
    diff = _decode_names(header.entity, header.diff, field_list) if header.diff else []
    skipped = set(diff) if isinstance(diff, list) else set()
    return {
        name: payload[name]
        for name in dict.fromkeys(decoded)
        if name in payload and name != HEADER and name not in skipped
    }


def _decode_names(
    entity: str, entries: Iterable[str], field_list: Sequence[str] | None
) -> list[str] | str:
    """Field names from `changedFields`-style entries, decoding Pub/Sub bitmaps.

    A top-level bitmap `0x..` sets bit i for field i of the Avro schema (the hex string is
    a big-endian integer: forcedotcom's Python example reverses its bit string, the Java
    one its bytes, both giving bit i == 2**i). `N-0x..` marks changes inside the compound
    field at position N; without that compound's own field list it stands for the
    compound field as a whole. Names such as `BillingAddress.City` also stand for their
    top-level field. Returns a re-sync reason when a bitmap cannot be decoded.
    """
    names: list[str] = []
    for entry in entries:
        top = _TOP_BITMAP.fullmatch(entry)
        nested = _NESTED_BITMAP.fullmatch(entry)
        if not top and not nested:
            names.append(entry.split(".", 1)[0])
            continue
        if field_list is None:
            return (
                f"Salesforce {entity} changedFields is a Pub/Sub bitmap ({entry!r}) and no "
                f"Avro field list is configured for {entity}; re-fetch the records"
            )
        if top:
            bits = int(top.group(1), 16)
            positions = [i for i in range(bits.bit_length()) if bits >> i & 1]
        else:
            assert nested is not None
            positions = [int(nested.group(1))] if int(nested.group(2), 16) else []
        for position in positions:
            if position >= len(field_list):
                return (
                    f"Salesforce {entity} bitmap {entry!r} sets field {position}, beyond the "
                    f"{len(field_list)} configured fields (the schema changed?); re-fetch"
                )
            names.append(field_list[position])
    return names


# --- CDC: activities -------------------------------------------------------------------


def activity_entity(kind: ActivityKind) -> str:
    """The sObject to re-read for this kind: Events are the only meetings, and calls,
    emails and tasks are all Tasks (their subtype tells them apart once fetched)."""
    return "Event" if kind == "meeting" else "Task"


def _activity_event(header: _Header, payload: dict[str, Any], item: Any) -> list[CrmChange]:
    """Tasks and Events. A creation or restore carries the record, so it is logged as it
    is; a deletion is recorded per record id. An UPDATE over CometD carries only the
    changed fields, so it cannot say what the activity now is (its kind, its deal): it is
    fetched again, as are gap records. An overflow or a wildcard id names no records, so
    every activity of the entity is fetched.
    """
    entity, change_type = header.entity, header.change_type
    kind = ACTIVITY_ENTITIES[entity]
    if change_type == "GAP_OVERFLOW" or any(r.endswith("*") for r in header.record_ids):
        return [
            ResyncRequest(
                f"Salesforce {entity} {change_type} names no records (transaction "
                f"{header.transaction_key}); re-sync every {entity}",
                activity_kind=kind,
            )
        ]
    if change_type == "UPDATE" or change_type in GAP_TYPES:
        return [
            ResyncRequest(
                f"Salesforce {entity} {change_type} does not carry the whole record; "
                "re-fetch the records",
                header.record_ids,
                activity_kind=kind,
            )
        ]
    if change_type == "DELETE":
        return [
            ActivityChange(
                crm_id=record_id,
                event_key=_event_key(header, record_id),
                occurred_at=header.committed_at,
                kind=kind,
                op="deleted",
            )
            for record_id in header.record_ids
        ]
    if change_type not in ("CREATE", "UNDELETE"):
        return [
            Unsupported(
                f"Salesforce {entity} changeType {change_type!r} is not handled",
                _json_safe(item),
            )
        ]
    values = _present(payload)
    return [
        activity_change(
            entity,
            record_id,
            values,
            event_key=_event_key(header, record_id),
            changed_at=header.committed_at,
        )
        for record_id in header.record_ids
    ]


def activity_change(
    entity: str,
    record_id: str,
    values: Mapping[str, Any],
    *,
    event_key: str,
    changed_at: datetime,
) -> ActivityChange:
    """A Task or Event record (its non-null fields) as a logged activity. Change events
    and REST re-syncs both come through here, so a re-fetched activity reads the same as
    the one its creation logged. `changed_at` is when Salesforce last changed the record;
    it orders the activity's versions and stands in for a missing activity date."""
    kind: ActivityKind = (
        "meeting" if entity == "Event" else TASK_KINDS.get(str(values.get("TaskSubtype")), "task")
    )
    what = values.get("WhatId")
    deal = what if isinstance(what, str) and what.startswith(DEAL_ID_PREFIX) else None
    account = values.get("AccountId")
    owner = values.get("OwnerId")
    properties = {
        name: _json_safe(value)
        for name, value in values.items()
        if name not in SYSTEM_FIELDS and name not in ("AccountId", "OwnerId")
    }
    return ActivityChange(
        crm_id=record_id,
        event_key=event_key,
        occurred_at=_activity_time(entity, values) or changed_at,
        kind=kind,
        deal_crm_id=deal,
        account_id=account if isinstance(account, str) and account else None,
        rep_crm_id=owner if isinstance(owner, str) and owner else None,
        properties=properties,
        changed_at=changed_at,
    )


def _activity_time(entity: str, values: Mapping[str, Any]) -> datetime | None:
    """When the activity happened: for an Event its start (ActivityDate is only its day),
    for a Task its date, else when it was created; None leaves the commit time."""
    order = (
        ("StartDateTime", "ActivityDateTime", "ActivityDate", "CreatedDate")
        if entity == "Event"
        else ("ActivityDate", "CreatedDate")
    )
    for name in order:
        when = _instant(values.get(name))
        if when is not None:
            return when
    return None


# --- Opportunity fields ----------------------------------------------------------------


def _deal_fields(
    values: Mapping[str, Any], *, delta: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Canonical deal fields and custom properties from Opportunity field values.

    `delta` says the values are only what changed (a CDC UPDATE), which matters for the
    status: IsClosed and IsWon are derived from StageName and change with it, so an UPDATE
    that names only one of them left the other as it was.
    """
    fields: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, value in values.items():
        if name in SYSTEM_FIELDS or name in FORECAST_FIELDS or name in ("IsClosed", "IsWon"):
            continue
        if name in DIRECT_FIELDS:
            fields[DIRECT_FIELDS[name]] = _json_safe(value)
        elif name == "Amount":
            fields["amount"] = _amount(value)
        elif name == "CloseDate":
            fields["close_date"] = _date(value)
        elif name == "CreatedDate":
            when = _instant(value)
            fields["created_at"] = when.isoformat() if when else _json_safe(value)
        else:
            properties[name] = _json_safe(value)
    for name in FORECAST_FIELDS:
        raw = values.get(name)
        if raw is None:
            continue
        category = FORECAST_CATEGORIES.get(str(raw).replace(" ", "").lower())
        if category is None:
            properties[name] = _json_safe(raw)
        elif "forecast_category" not in fields:
            fields["forecast_category"] = category
    status = _status(
        _boolean(values["IsClosed"]) if "IsClosed" in values else None,
        _boolean(values["IsWon"]) if "IsWon" in values else None,
        delta=delta,
    )
    if status is not None:
        fields["status"] = status
    return fields, properties


def _status(closed: bool | None, won: bool | None, *, delta: bool) -> str | None:
    """open / won / lost from IsClosed and IsWon, None when they do not tell.

    In a delta, a missing flag is unchanged: IsWon turning false alone means a won deal
    became lost (had it reopened, IsClosed would have changed too), and IsClosed turning
    true alone means an open deal (never won) closed as lost.
    """
    if won is True:
        return "won"
    if closed is False:
        return "open"
    if closed is True:
        return "lost"
    if won is False and delta:
        return "lost"
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _amount(value: Any) -> Any:
    """A decimal string. A value that is not a number is passed on for event validation to
    reject with a reason, rather than failing the whole batch here."""
    if value is None:
        return None
    if isinstance(value, float):
        raise CdcError(
            "Amount arrived as a float, which may already have lost cents; parse the body "
            "with parse_float=Decimal"
        )
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return amount_text(value)
    except MoneyError:
        return _json_safe(value)


def _date(value: Any) -> Any:
    """`YYYY-MM-DD` from an ISO date (CometD, AppFlow, SOAP) or epoch ms (Pub/Sub)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    when = _instant(value)
    return when.date().isoformat() if when else _json_safe(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _from_millis(millis: int) -> datetime | None:
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return None


def _instant(value: Any) -> datetime | None:
    """An aware UTC datetime from epoch ms or an ISO string (`Z`, `+0000` or none)."""
    if value is None:
        return None
    if not isinstance(value, str):
        millis = _integer(value)
        return _from_millis(millis) if millis is not None else None
    text = value.strip()
    if _INTEGER.fullmatch(text):
        return _from_millis(int(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json_safe(value: Any) -> Any:
    """JSON-native copy: Decimals become exact decimal strings (orjson cannot write them,
    and a float would round them)."""
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --- Outbound Messages -----------------------------------------------------------------


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: Element | None) -> str | None:
    if element is None or element.get(_q(XSI_NS, "nil")) == "true":
        return None
    return (element.text or "").strip()


_SESSION_ID = re.compile(rb"(<(?:[\w.-]+:)?SessionId\b[^>/]*>)[^<]*(</(?:[\w.-]+:)?SessionId>)")


def redact_session_id(body: bytes) -> bytes:
    """The delivery with its `SessionId` blanked, for the archive.

    An Outbound Message set to "Send Session ID" carries a live API session of the org;
    nothing here reads it, and kept in the archive it would be a credential anyone with
    admin access to the archive could use.
    """
    return _SESSION_ID.sub(rb"\1[redacted]\2", body)


def parse_outbound(body: bytes) -> OutboundBatch:
    """Parse an Outbound Message `notifications` SOAP envelope.

    Each Opportunity notification is the record's latest state, so it is an "updated"
    change carrying every field present; its time is the record's LastModifiedDate (or
    SystemModstamp, or CreatedDate), never the time of receipt, so a redelivery yields the
    same change. Its key is the notification Id, which Salesforce keeps across retries.
    A notification without any of those times asks for a re-sync of its record, carrying
    its values (parked with them if the source cannot re-sync: webhooks/ingest.py); other
    sObject types, and notifications without an Id or a valid record id, are Unsupported.
    Only a message that is not an Outbound Message at all raises `OutboundError`. Parsing
    refuses DTDs and entity declarations (defusedxml): a SOAP message has no business
    carrying either.
    """
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise OutboundError(f"unsafe XML refused ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise OutboundError(f"malformed XML: {exc}") from exc
    if root.tag != _q(SOAP_ENV_NS, "Envelope"):
        raise OutboundError(f"not a SOAP 1.1 envelope (root element {root.tag!r})")
    soap_body = root.find(_q(SOAP_ENV_NS, "Body"))
    notifications = (
        soap_body.find(_q(OUTBOUND_NS, "notifications")) if soap_body is not None else None
    )
    if notifications is None:
        raise OutboundError(f"the SOAP Body has no notifications element in {OUTBOUND_NS}")
    organization = _text(notifications.find(_q(OUTBOUND_NS, "OrganizationId")))
    if not organization:
        raise OutboundError("OrganizationId is missing")
    action = _text(notifications.find(_q(OUTBOUND_NS, "ActionId"))) or None
    items = notifications.findall(_q(OUTBOUND_NS, "Notification"))
    if len(items) > MAX_NOTIFICATIONS:
        raise OutboundError(
            f"{len(items)} notifications; an Outbound Message carries at most {MAX_NOTIFICATIONS}"
        )
    changes = [_notification(n, item) for n, item in enumerate(items)]
    return OutboundBatch(organization_id=organization, action_id=action, changes=changes)


def _sobject_values(element: Element, depth: int = 0) -> dict[str, Any]:
    """Field name -> text (None when xsi:nil); a field with child elements -> a dict."""
    if depth >= MAX_FIELD_DEPTH:
        raise OutboundError(f"sObject fields nested deeper than {MAX_FIELD_DEPTH} levels")
    values: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        values[name] = _sobject_values(child, depth + 1) if len(child) else _text(child)
    return values


def _notification(n: int, item: Element) -> CrmChange:
    """One notification, on its own: a notification that cannot be used is set aside with
    its reason and never costs the others their Ack (Salesforce would retry all of them
    for 24 hours, then drop them)."""
    where = f"Notification[{n}]"
    notification_id = _text(item.find(_q(OUTBOUND_NS, "Id")))
    sobject = item.find(_q(OUTBOUND_NS, "sObject"))
    if not notification_id or sobject is None:
        missing = "Id" if not notification_id else "sObject"
        return Unsupported(f"Outbound Message {where} has no {missing}", {"position": n})
    type_name = (sobject.get(_q(XSI_NS, "type")) or "").rpartition(":")[2]
    values = _sobject_values(sobject)
    record_id = values.get("Id")
    if type_name != DEAL_ENTITY:
        return Unsupported(
            f"Outbound Message for sObject type {type_name or 'unknown'!r} is not handled",
            {"notification_id": notification_id, "sobject_type": type_name, "id": record_id},
        )
    if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
        return Unsupported(
            f"Outbound Message {where}: the Opportunity has no valid sf:Id",
            {"notification_id": notification_id, "id": _json_safe(record_id)},
        )
    occurred = _notification_time(values)
    if isinstance(occurred, str):
        # Its fields cannot be placed among the deal's other changes, so they are not
        # stored: the record is read back from the REST API, stamped with its
        # LastModifiedDate, which orders it like every other change.
        return ResyncRequest(
            f"Outbound Message {notification_id}: {occurred}; re-read the Opportunity",
            (record_id,),
            values={"notification_id": notification_id, "sobject": values},
        )
    fields, properties = _deal_fields(values, delta=False)
    return DealChange(
        crm_id=record_id,
        event_key=f"sfom:{notification_id}",
        occurred_at=occurred,
        op="updated",
        fields=fields,
        properties=properties,
    )


def _notification_time(values: Mapping[str, Any]) -> datetime | str:
    """When Salesforce last changed the record, or why the notification does not say.

    The admin picks the fields an Outbound Message carries, so none of these may be there.
    """
    for name in ("LastModifiedDate", "SystemModstamp", "CreatedDate"):
        raw = values.get(name)
        if raw is None:
            continue
        when = _instant(raw)
        return when if when is not None else f"{name} {raw!r} is not an ISO datetime"
    return "it carries none of LastModifiedDate, SystemModstamp or CreatedDate"


def outbound_ack(ok: bool = True) -> bytes:
    """The `notificationsResponse` Salesforce waits for; anything but Ack true makes it
    retry the whole message (for up to 24 hours)."""
    value = "true" if ok else "false"
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"><soapenv:Body>'
        f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>{value}</Ack>'
        "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()
