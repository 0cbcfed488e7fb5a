"""Pipedrive webhook bodies (v2 and v1) parsed into connector changes.

Pure: `parse(body)` looks only at the body it is given (no clock, no I/O), so the same
body always gives the same changes. `body` is the JSON object as parsed with
`parse_float=Decimal`; amounts never pass through a float.

Wire formats, with the sources they were checked against:

- v2 `{meta, data, previous}` (the default since March 2025). `meta.action` is `create`,
  `change` or `delete`, `meta.entity` the object type, `meta.id` the id "of the event
  triggering the webhook", `meta.attempt` 1-4 on retries. `create`: `data` is the object,
  `previous` null; `change`: `previous` holds only the changed fields; `delete`: `data` is
  null, `previous` the last state. A merge is a `delete` whose meta carries `merged_to_id`
  plus a `change` whose meta carries `merged_from_id`. Custom fields sit in
  `data.custom_fields` as `{hash: {type, value | id | values, ...}}`; option fields carry
  only ids. Sources: pipedrive.readme.io/docs/guide-for-webhooks-v2 and
  /docs/webhooks-v2-migration-guide; PipedreamHQ/pipedream
  components/pipedrive/sources/*-instant/test-event.mjs; prismatic.io example payload
  (numeric `meta.timestamp`, integer ids); trackit/crm-pipedrive2ace
  src/migration/datastructures/PipedriveDeal.ts (custom field value shapes).
  `meta.timestamp` is documented as a "10 character timestamp" but the published examples
  use ISO strings; both are accepted (and 13-digit epoch milliseconds).
- v1 `{v, meta, current, previous, retry, event}`: `meta.action` is `added`, `updated`,
  `deleted` or `merged`, `meta.object` the object type, and `meta.id` is the id *of the
  object*, not of the event (guide-for-webhooks; confirmed by the Pipedream v1 fixtures,
  where `meta.id == current.id`). Times are epoch seconds (`timestamp`) with
  `timestamp_milli` / `timestamp_micro` beside them. `current`/`previous` are full objects;
  custom fields are top-level 40-hex keys. `merged` is sent for the surviving object:
  `current` is the survivor (with `merge_what_id`), `previous` the object merged away; a
  separate `deleted` is sent for the object merged away (guide-for-webhooks "Current and
  previous" table; sulsseo/django_pipedrive pipedrive/tests.py `test_merge_organizations`).

Deal fields come out under canonical names with CRM ids raw (crm/mapping.py translates them):
title->name, value->amount (decimal string), currency, status (open/won/lost), stage_id->
stage, pipeline_id->pipeline, owner_id (v2) / user_id (v1)->owner_id, org_id->account_id,
expected_close_date->close_date (ISO date), add_time->created_at (ISO UTC). Pipedrive has no
standard deal type, so `deal_type` is never set. Every value is JSON-native (strings, ints,
bools, lists, dicts), because the event log serialises events without a Decimal hook.

Errors: a body that is neither v1 nor v2 raises `PipedriveError` (the route answers 400). A
well-formed body whose entity or action we do not track, whose values cannot be read, or
whose `meta` names another entity than its data holds, is `Unsupported` (answered 2xx so
Pipedrive's ban counter does not grow, and kept in the DLQ). A deal change touching no
field we read, and an organisation change other than a merge, are `Ignored`; an
organisation merge is `AccountMerged` (its deals move to the surviving organisation).
Activity `due_time` / `duration` may come bare or as `{"value": ...}` objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from services.pipeline_api.crm.changes import (
    AccountMerged,
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

MERGE_REASON = "merge"

_HASH = re.compile(r"^[0-9a-f]{40}$")
_HASH_CURRENCY = re.compile(r"^[0-9a-f]{40}_currency$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUSES = frozenset({"open", "won", "lost"})
_KINDS: dict[str, ActivityKind] = {
    "call": "call",
    "meeting": "meeting",
    "lunch": "meeting",
    "task": "task",
    "deadline": "task",
    "email": "email",
}
_ACTIVITY_PROPERTIES = ("subject", "done", "duration", "note")
_V2_ACTIONS = {"create": "create", "change": "change", "delete": "delete"}
_V1_ACTIONS = {"added": "create", "updated": "change", "deleted": "delete", "merged": "merge"}
_TRACKED = frozenset({"deal", "activity", "organization"})
# Keys every full `data` / `current` object of the entity has; a body naming one entity
# and carrying none of its keys describes something else and must not be applied.
_ENTITY_KEYS = {
    "deal": frozenset({"title", "stage_id", "pipeline_id", "value"}),
    "activity": frozenset({"subject", "type", "due_date", "done"}),
    "organization": frozenset({"name", "address"}),
}


class PipedriveError(ValueError):
    """The body is neither a Pipedrive v1 nor a v2 webhook."""


class _BadValue(ValueError):
    """A well-formed webhook carrying a value we cannot read: reported as Unsupported."""


@dataclass(frozen=True)
class _Event:
    version: int
    entity: str
    action: str  # create | change | delete | merge
    event_key: str
    occurred_at: datetime
    entity_id: str | None
    current: dict[str, Any] | None
    previous: dict[str, Any] | None
    merged_to: str | None = None
    merged_from: str | None = None


def parse(body: Any) -> list[CrmChange]:
    """Parse one Pipedrive webhook body (v2 or v1) into connector changes."""
    if not isinstance(body, dict):
        raise PipedriveError(f"a Pipedrive webhook is a JSON object, got {type(body).__name__}")
    meta = body.get("meta")
    if not isinstance(meta, dict):
        raise PipedriveError("not a Pipedrive webhook: no meta object")
    if "entity" in meta or ("data" in body and "current" not in body):
        return _parse_v2(body, meta)
    if "object" in meta or "current" in body:
        return _parse_v1(body, meta)
    raise PipedriveError("not a Pipedrive webhook: meta has neither entity (v2) nor object (v1)")


# --- envelopes -------------------------------------------------------------------------


def _parse_v2(body: dict[str, Any], meta: dict[str, Any]) -> list[CrmChange]:
    action = _envelope_text(meta, "action")
    entity = _envelope_text(meta, "entity")
    event_id = _envelope_id(meta.get("id"), "meta.id")
    data = _envelope_object(body, "data")
    previous = _envelope_object(body, "previous")
    unsupported = _untracked(body, entity, _V2_ACTIONS.get(action), action)
    if unsupported is not None:
        return [unsupported]
    try:
        stamp = meta.get("timestamp")
        if stamp is None:
            stamp = _first(data, previous, key="update_time")
        event = _Event(
            version=2,
            entity=entity,
            action=_V2_ACTIONS[action],
            event_key=f"pd:{event_id}",
            occurred_at=_time(stamp, "meta.timestamp"),
            entity_id=_id(meta.get("entity_id")),
            current=data,
            previous=previous,
            merged_to=_id(_first(meta, previous, data, key="merged_to_id")),
            merged_from=_id(_first(meta, data, previous, key="merged_from_id")),
        )
        return _dispatch(event)
    except _BadValue as exc:
        return [Unsupported(str(exc), body)]


def _parse_v1(body: dict[str, Any], meta: dict[str, Any]) -> list[CrmChange]:
    action = _envelope_text(meta, "action")
    entity = _envelope_text(meta, "object")
    object_id = _envelope_id(meta.get("id"), "meta.id")
    current = _envelope_object(body, "current")
    previous = _envelope_object(body, "previous")
    unsupported = _untracked(body, entity, _V1_ACTIONS.get(action), action)
    if unsupported is not None:
        return [unsupported]
    try:
        # Most precise first; all three describe the same instant.
        for name in ("timestamp_micro", "timestamp_milli", "timestamp"):
            if meta.get(name) is not None:
                occurred_at = _time(meta[name], f"meta.{name}")
                break
        else:
            occurred_at = _time(_first(current, previous, key="update_time"), "meta.timestamp")
        # v1 meta.id names the object, not the event: the key adds what and when.
        micros = (occurred_at - _EPOCH) // timedelta(microseconds=1)
        event = _Event(
            version=1,
            entity=entity,
            action=_V1_ACTIONS[action],
            event_key=f"pd:v1:{entity}:{action}:{object_id}:{micros}",
            occurred_at=occurred_at,
            entity_id=object_id,
            current=current,
            previous=previous,
        )
        return _dispatch(event)
    except _BadValue as exc:
        return [Unsupported(str(exc), body)]


def _untracked(
    body: dict[str, Any], entity: str, action: str | None, raw_action: str
) -> Unsupported | None:
    if entity not in _TRACKED:
        return Unsupported(f"Pipedrive entity {entity!r} is not tracked", body)
    if action is None:
        return Unsupported(f"Pipedrive action {raw_action!r} on {entity} is not handled", body)
    if entity == "activity" and action == "merge":
        return Unsupported("activity merges are not tracked", body)
    return None


def _dispatch(event: _Event) -> list[CrmChange]:
    _check_entity(event)
    if event.entity == "organization":
        return [_organization(event)]
    if event.entity == "activity":
        if event.action == "delete" or (event.current is not None and _is_deleted(event.current)):
            return [_activity_deleted(event)]
        return [_activity(event)]
    if event.action == "delete":
        return _deal_deleted(event)
    if event.action == "merge":
        return _deal_merged_v1(event)
    return _deal_written(event)


def _check_entity(event: _Event) -> None:
    """A body whose meta names another entity than its data holds is not applied: a deal
    stored from an activity's data would be half empty. (Ids are not compared: published
    examples disagree on `meta.entity_id` and `data.id` for the same object.)"""
    data = event.current
    if data is not None and not _ENTITY_KEYS[event.entity] & data.keys():
        raise _BadValue(
            f"meta names a {event.entity} but the data has none of its fields "
            f"({', '.join(sorted(_ENTITY_KEYS[event.entity]))})"
        )


# --- organisations ---------------------------------------------------------------------


def _organization(event: _Event) -> CrmChange:
    """Only a merge of organisations matters here: the deals of the organisation merged
    away now belong to the survivor (v2: a `delete` with `meta.merged_to_id`; v1: `merged`
    with the survivor in `current`, the merged one in `previous`). Any other organisation
    change touches no deal field."""
    merged: str | None
    survivor: str | None
    if event.action == "delete" and event.merged_to is not None:
        merged = event.entity_id or _id(_first(event.previous, key="id"))
        survivor = event.merged_to
    elif event.action == "merge":
        merged = _id(_first(event.previous, key="id"))
        survivor = _id(_first(event.current, key="id")) or event.entity_id
    else:
        return Ignored(f"Pipedrive organization {event.action}: no deal field changes")
    if merged is None or survivor is None or merged == survivor:
        raise _BadValue("organization merge without both organisations' ids")
    return AccountMerged(
        merged_id=merged,
        survivor_id=survivor,
        event_key=event.event_key,
        occurred_at=event.occurred_at,
    )


# --- deals -----------------------------------------------------------------------------


def _deal_deleted(event: _Event) -> list[CrmChange]:
    crm_id = event.entity_id or _id(_first(event.previous, key="id"))
    if crm_id is None:
        raise _BadValue("deal delete without meta.entity_id or previous.id")
    changes: list[CrmChange] = [
        DealChange(
            crm_id=crm_id,
            event_key=event.event_key,
            occurred_at=event.occurred_at,
            op="deleted",
            merged_into=event.merged_to,
        )
    ]
    if event.merged_to is not None:
        # The survivor's merged-in state may arrive in a companion change that a ban can
        # lose: fetch it either way.
        changes.append(ResyncRequest(MERGE_REASON, (event.merged_to,)))
    return changes


def _deal_merged_v1(event: _Event) -> list[CrmChange]:
    """v1 `merged` describes the survivor; `previous` is the deal merged away."""
    survivor = _id(_first(event.current, key="id")) or event.entity_id
    merged_away = _id(_first(event.previous, key="id")) or _id(
        _first(event.current, key="merge_what_id")
    )
    if survivor is None:
        raise _BadValue("deal merge without the surviving deal's id")
    changes: list[CrmChange] = []
    if merged_away is not None and merged_away != survivor:
        changes.append(
            DealChange(
                crm_id=merged_away,
                event_key=event.event_key,
                occurred_at=event.occurred_at,
                op="deleted",
                merged_into=survivor,
            )
        )
    changes.append(ResyncRequest(MERGE_REASON, (survivor,)))
    return changes


def _deal_written(event: _Event) -> list[CrmChange]:
    """A deal create or change (v2 create/change, v1 added/updated)."""
    current = event.current
    if current is None:
        raise _BadValue(f"deal {event.action} without the deal's data")
    crm_id = _id(current.get("id")) or event.entity_id
    if crm_id is None:
        raise _BadValue(f"deal {event.action} without data.id or meta.entity_id")
    previous = event.previous
    fields = _deal_fields(current)
    properties = _deal_properties(current)
    op: DealOp = "created" if event.action == "create" else "updated"

    if _is_deleted(current):
        op = "deleted"
    elif op == "updated" and previous is not None and _is_deleted(previous):
        op = "restored"  # undeleted: state it in full, as a create
    elif op == "updated" and previous is not None:
        if event.version == 2:
            fields = {k: v for k, v in fields.items() if _v2_changed(k, previous)}
            properties = _v2_changed_properties(properties, previous)
        else:
            before = _deal_fields(previous)
            fields = {k: v for k, v in fields.items() if k not in before or before[k] != v}
            old = _deal_properties(previous)
            properties = {k: v for k, v in properties.items() if k not in old or old[k] != v}
        if "amount" in fields and "currency" not in fields and "currency" in current:
            # Without it mapping would fill in the source's default currency.
            fields["currency"] = _currency(current["currency"])

    changes: list[CrmChange] = []
    if op == "deleted":
        changes.append(
            DealChange(
                crm_id=crm_id,
                event_key=event.event_key,
                occurred_at=event.occurred_at,
                op="deleted",
            )
        )
    elif op == "updated" and not fields and not properties:
        changes.append(Ignored(f"Pipedrive deal {crm_id} change touches no field we read"))
    else:
        changes.append(
            DealChange(
                crm_id=crm_id,
                event_key=event.event_key,
                occurred_at=event.occurred_at,
                op=op,
                fields=fields,
                properties=properties,
            )
        )
    if event.merged_from is not None:
        changes.append(ResyncRequest(MERGE_REASON, (crm_id,)))
    return changes


# (source keys, canonical name); the first source key present wins.
_DEAL_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("title",), "name"),
    (("value",), "amount"),
    (("currency",), "currency"),
    (("status",), "status"),
    (("stage_id",), "stage"),
    (("pipeline_id",), "pipeline"),
    (("owner_id", "user_id"), "owner_id"),
    (("org_id",), "account_id"),
    (("expected_close_date",), "close_date"),
    (("add_time",), "created_at"),
)


def _deal_fields(obj: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for keys, name in _DEAL_KEYS:
        key = next((k for k in keys if k in obj), None)
        if key is None:
            continue
        value = obj[key]
        if name == "name":
            fields[name] = None if value is None else str(value)
        elif name == "amount":
            fields[name] = _amount(value)
        elif name == "currency":
            fields[name] = _currency(value)
        elif name == "status":
            status = value.strip().lower() if isinstance(value, str) else None
            if status in _STATUSES:
                fields[name] = status
        elif name in ("stage", "pipeline"):
            fields[name] = _id(value)
        elif name == "owner_id":
            fields[name] = _ref(value, "id", "value")
        elif name == "account_id":
            fields[name] = _ref(value, "value", "id")
        elif name == "close_date":
            fields[name] = _date(value)
        else:
            fields[name] = None if value in (None, "") else _iso(_time(value, key))
    return fields


def _v2_changed(name: str, previous: dict[str, Any]) -> bool:
    keys = next(keys for keys, canonical in _DEAL_KEYS if canonical == name)
    return any(k in previous for k in keys)


def _is_deleted(obj: dict[str, Any]) -> bool:
    status = obj.get("status")
    return (
        (isinstance(status, str) and status.strip().lower() == "deleted")
        or obj.get("is_deleted") is True
        or obj.get("deleted") is True
    )


def _deal_properties(obj: dict[str, Any]) -> dict[str, Any]:
    """Custom fields by hash: v2 `custom_fields`, v1 top-level 40-hex keys."""
    properties: dict[str, Any] = {}
    custom = obj.get("custom_fields")
    if isinstance(custom, dict):
        for key, raw in custom.items():
            properties[str(key)] = _custom_value(raw)
            if isinstance(raw, dict) and raw.get("type") == "monetary" and "currency" in raw:
                properties[f"{key}_currency"] = _json(raw["currency"])
    for key, raw in obj.items():
        if isinstance(key, str) and (_HASH.match(key) or _HASH_CURRENCY.match(key)):
            properties[key] = _json(raw)
    return properties


def _v2_changed_properties(properties: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    if "custom_fields" not in previous:
        changed = {k for k in previous if isinstance(k, str) and _HASH.match(k)}
    elif isinstance(previous["custom_fields"], dict):
        changed = {str(k) for k in previous["custom_fields"]}
    else:
        return properties  # previous says "custom fields changed" without saying which
    changed |= {f"{k}_currency" for k in changed}
    return {k: v for k, v in properties.items() if k in changed}


def _custom_value(raw: Any) -> Any:
    """v2 custom field `{type, value | id | values, ...}` -> its scalar (option ids kept)."""
    if not isinstance(raw, dict):
        return _json(raw)
    if "value" in raw:
        return _json(raw["value"])
    if isinstance(raw.get("values"), list):
        return [_json(v.get("id") if isinstance(v, dict) else v) for v in raw["values"]]
    if "id" in raw:
        return _json(raw["id"])
    return {str(k): _json(v) for k, v in raw.items() if k != "type"}


# --- activities ------------------------------------------------------------------------


def _activity(event: _Event) -> ActivityChange:
    """An activity created or changed: `data` (v2) / `current` (v1) is all of it. It is
    ordered by the webhook's time, not by its due date, so a change made today supersedes
    what was logged yesterday for next week."""
    data = event.current
    if data is None:
        raise _BadValue(f"activity {event.action} without the activity's data")
    crm_id = _id(data.get("id")) or event.entity_id
    if crm_id is None:
        raise _BadValue("activity without data.id or meta.entity_id")
    rep_key = next((k for k in ("owner_id", "user_id", "assigned_to_user_id") if k in data), None)
    return ActivityChange(
        crm_id=crm_id,
        event_key=event.event_key,
        occurred_at=_activity_time(data, event.occurred_at),
        kind=_activity_kind(data),
        deal_crm_id=_id(data.get("deal_id")),
        account_id=_ref(data.get("org_id"), "value", "id"),
        rep_crm_id=None if rep_key is None else _ref(data[rep_key], "id", "value"),
        properties={k: _activity_property(k, data[k]) for k in _ACTIVITY_PROPERTIES if k in data},
        changed_at=event.occurred_at,
    )


def _activity_deleted(event: _Event) -> ActivityChange:
    """A `delete` (v2 `data` null, v1 `current` null; `previous` the last state), or a
    change that marks the activity deleted."""
    last = event.current or event.previous
    crm_id = event.entity_id or _id(_first(last, key="id"))
    if crm_id is None:
        raise _BadValue("activity delete without meta.entity_id or previous.id")
    return ActivityChange(
        crm_id=crm_id,
        event_key=event.event_key,
        occurred_at=event.occurred_at,
        kind=_activity_kind(last or {}),
        op="deleted",
    )


def _activity_kind(data: dict[str, Any]) -> ActivityKind:
    kind_name = data.get("type")
    return _KINDS.get(kind_name.strip().lower(), "note") if isinstance(kind_name, str) else "note"


def _activity_time(data: dict[str, Any], fallback: datetime) -> datetime:
    due_date = data.get("due_date")
    if isinstance(due_date, str) and due_date.strip():
        day = _parse_date(due_date, "due_date")
        due_time = _typed_value(data.get("due_time"), "due_time")
        at = time(0, 0)
        if isinstance(due_time, str) and due_time.strip():
            try:
                at = time.fromisoformat(due_time.strip())
            except ValueError as exc:
                raise _BadValue(f"due_time {due_time!r} is not HH:MM") from exc
        elif due_time not in (None, ""):
            raise _BadValue(f"due_time {due_time!r} is not HH:MM")
        return datetime.combine(day, at.replace(tzinfo=None), tzinfo=UTC)
    add_time = data.get("add_time")
    if add_time not in (None, ""):
        return _time(add_time, "add_time")
    return fallback


def _activity_property(name: str, value: Any) -> Any:
    return _json(_typed_value(value, name) if name == "duration" else value)


def _typed_value(value: Any, what: str) -> Any:
    """A value Pipedrive may send bare (`"14:30"`) or as an object carrying it under
    `value`, the v2 form of typed values (as in `custom_fields`). An object without one is
    refused rather than read as empty: a due time silently read as midnight is wrong."""
    if not isinstance(value, dict):
        return value
    if "value" not in value:
        raise _BadValue(f"{what} {_json(value)!r} carries no value")
    return value["value"]


# --- values ----------------------------------------------------------------------------


def _envelope_text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PipedriveError(f"not a Pipedrive webhook: meta.{key} is missing")
    return value.strip().lower()


def _envelope_id(value: Any, where: str) -> str:
    try:
        ident = _id(value)
    except _BadValue as exc:
        raise PipedriveError(f"not a Pipedrive webhook: {where}: {exc}") from exc
    if ident is None:
        raise PipedriveError(f"not a Pipedrive webhook: {where} is missing")
    return ident


def _envelope_object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise PipedriveError(f"not a Pipedrive webhook: {key} is {type(value).__name__}")
    return value


def _first(*objects: dict[str, Any] | None, key: str) -> Any:
    for obj in objects:
        if obj is not None and obj.get(key) not in (None, ""):
            return obj[key]
    return None


def _id(value: Any) -> str | None:
    """A CRM id as a string: ints and strings alike (Pipedrive sends both)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _BadValue(f"id {value!r} is a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str):
        return value.strip() or None
    raise _BadValue(f"id {value!r} is not a string or an integer")


def _ref(value: Any, *keys: str) -> str | None:
    """An id that v1 may send as an object (`{"id": ..}` for users, `{"value": ..}` for orgs)."""
    if isinstance(value, dict):
        return _id(next((value[k] for k in keys if value.get(k) is not None), None))
    return _id(value)


def _amount(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return amount_text(value)
    except MoneyError as exc:
        raise _BadValue(f"deal value: {exc}") from exc


def _currency(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadValue(f"currency {value!r} is not a string")
    return value.strip().upper() or None


def _date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadValue(f"date {value!r} is not a string")
    return _parse_date(value, "expected_close_date").isoformat()


def _parse_date(value: str, what: str) -> date:
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return _time(text, what).date()
    except ValueError as exc:
        raise _BadValue(f"{what} {value!r} is not a date") from exc


def _time(value: Any, what: str) -> datetime:
    """A Pipedrive time: ISO 8601 / "YYYY-MM-DD HH:MM:SS" (UTC) or epoch s, ms or µs."""
    if value is None or value == "":
        raise _BadValue(f"{what} is missing: the change cannot be ordered")
    if isinstance(value, bool):
        raise _BadValue(f"{what} {value!r} is a boolean")
    if isinstance(value, int | Decimal):
        return _epoch(Decimal(value), what)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return _epoch(Decimal(text), what)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise _BadValue(f"{what} {value!r} is not a timestamp") from exc
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)  # Pipedrive's "YYYY-MM-DD HH:MM:SS" is UTC
        return parsed.astimezone(UTC)
    raise _BadValue(f"{what} {value!r} is not a timestamp")


def _epoch(value: Decimal, what: str) -> datetime:
    if not value.is_finite() or value < 0:
        raise _BadValue(f"{what} {value} is not an epoch time")
    if value < 10**11:
        scale = 10**6  # seconds (10 digits)
    elif value < 10**14:
        scale = 10**3  # milliseconds (13 digits)
    elif value < 10**17:
        scale = 1  # microseconds (16 digits, v1 timestamp_micro)
    else:
        raise _BadValue(f"{what} {value} is not an epoch time")
    try:
        micros = int((value * scale).to_integral_value())
        return _EPOCH + timedelta(microseconds=micros)
    except (InvalidOperation, OverflowError) as exc:
        raise _BadValue(f"{what} {value} is not an epoch time") from exc


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> Any:
    """JSON-native copy: Decimals become exact decimal strings."""
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return value
