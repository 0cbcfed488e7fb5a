"""HubSpot webhook batches (Webhooks API v3 payloads) as `CrmChange`s. Pure.

What HubSpot really sends (../shared/reference/crm-webhooks.md, section 1): an array of
events named by `subscriptionType` (docs: `eventType`); `propertyValue` always a string;
`eventId` not unique; no ordering; a creation as `deal.creation` plus one
`deal.propertyChange` per property at the same `occurredAt`. Each property change becomes
its own one-field change, so "last `occurredAt` wins" holds per (deal, property) in the
projection's fold; merges and restores also ask for a re-sync, because the payload does
not carry the resulting deal's properties.

The generic format (`object.creation`, `object.propertyChange`, `object.deletion`,
`object.merge`, `object.restore` with `objectTypeId`, `0-3` for deals) reads like the
legacy `deal.*` one. Association changes come as legacy `deal.associationChange`
(`associationType` `DEAL_TO_COMPANY`, `isPrimaryAssociation`) or generic
`object.associationChange` (`associationTypeId`: 5 primary / 341 unlabelled deal-to-company,
6 / 342 company-to-deal; `fromObjectTypeId` / `toObjectTypeId`). Only the primary company
is the deal's account, so adding or removing a secondary company (or a user-defined
label) is ignored; an engagement moved to or from a deal is read back. A company
merge moves the deals of the companies merged away to the survivor (`AccountMerged`). A
body that is one event object rather than an array (a replay from logs) is read as a
batch of one.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
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
from shared.money import MoneyError, amount_text

DEAL_OBJECT_TYPE = "0-3"
COMPANY_OBJECT_TYPE = "0-2"
# HUBSPOT_DEFINED association type ids between deals and companies, and whether each is
# the primary association; deal-to-company first, then company-to-deal.
DEAL_TO_COMPANY_TYPES = {5: True, 341: False}
COMPANY_TO_DEAL_TYPES = {6: True, 342: False}
_SIDES = (
    ("DEAL_TO_COMPANY", DEAL_TO_COMPANY_TYPES, (DEAL_OBJECT_TYPE, COMPANY_OBJECT_TYPE)),
    ("COMPANY_TO_DEAL", COMPANY_TO_DEAL_TYPES, (COMPANY_OBJECT_TYPE, DEAL_OBJECT_TYPE)),
)
# Within one instant an added primary company sorts after a removed one, so switching the
# primary company (both events at the same occurredAt) never leaves the deal without one.
REMOVED_SEQUENCE = 0
ADDED_SEQUENCE = 1
ENGAGEMENT_KINDS: dict[str, ActivityKind] = {
    "0-48": "call",
    "0-49": "email",
    "0-47": "meeting",
    "0-27": "task",
    "0-46": "note",
}
FORECAST_CATEGORIES = {
    "PIPELINE": "pipeline",
    "BEST_CASE": "best_case",
    "COMMIT": "commit",
    "CLOSED": "closed",
    "OMIT": "omitted",
}


class HubSpotError(ValueError):
    """The body is not a HubSpot webhook batch."""


def events(body: Any) -> list[Any]:
    """The events of a body: HubSpot sends an array; one event object (a delivery
    replayed from logs) is a batch of one."""
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list) or not body:
        raise HubSpotError("a HubSpot webhook body is a JSON event or a non-empty array of them")
    return body


def portal_ids(body: Any) -> set[str]:
    ids = set()
    for n, item in enumerate(events(body)):
        if not isinstance(item, dict) or item.get("portalId") is None:
            raise HubSpotError(f"event {n} has no portalId")
        ids.add(str(item["portalId"]))
    return ids


def _when(item: dict[str, Any]) -> datetime:
    value = item.get("occurredAt")
    if not isinstance(value, int):
        raise HubSpotError("occurredAt must be epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, UTC)


def _key(item: dict[str, Any], *parts: Any) -> str:
    # eventId alone is not unique; attemptNumber changes on retries and is left out.
    base = [
        item.get("portalId"),
        item.get("subscriptionId"),
        item.get("eventId"),
        item.get("objectId"),
        item.get("propertyName") or "-",
        item.get("occurredAt"),
    ]
    return "hs:" + ":".join(str(p) for p in (*base, *parts))


def _epoch_or_iso(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def property_field(name: str, value: str | None) -> tuple[str, Any] | None:
    """A HubSpot deal property as (canonical field, value); None for custom properties."""
    blank = value is None or value == ""
    if name == "dealname":
        return "name", None if blank else value
    if name == "amount":
        if blank:
            return "amount", None
        try:
            return "amount", amount_text(str(value).replace(",", ""))
        except MoneyError:
            return "amount", value  # left for validation to reject with a reason
    if name == "deal_currency_code":
        return "currency", None if blank else value
    if name == "dealstage":
        return "stage", None if blank else value
    if name == "pipeline":
        return "pipeline", None if blank else value
    if name == "hubspot_owner_id":
        return "owner_id", None if blank else value
    if name == "dealtype":
        return "deal_type", None if blank else value
    if name == "closedate":
        return "close_date", None if blank else _epoch_or_iso(str(value)).date().isoformat()
    if name == "createdate":
        return "created_at", None if blank else _epoch_or_iso(str(value)).isoformat()
    if name == "hs_forecast_category":
        return "forecast_category", None if blank else FORECAST_CATEGORIES.get(str(value))
    return None


def _object_type(item: dict[str, Any], kind: str) -> str | None:
    if kind.startswith("deal."):
        return DEAL_OBJECT_TYPE
    if kind.startswith("company."):
        return COMPANY_OBJECT_TYPE
    type_id = item.get("objectTypeId")
    return str(type_id) if type_id is not None else None


def parse(body: Any) -> list[CrmChange]:
    portal_ids(body)
    out: list[CrmChange] = []
    for item in events(body):
        try:
            out.extend(_item(item))
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            # One unreadable item must not fail the batch: HubSpot would redeliver it all
            # and count the failure towards disabling the subscription.
            out.append(Unsupported(f"HubSpot event could not be read: {exc}", item))
    return out


def _item(item: dict[str, Any]) -> list[CrmChange]:
    kind = str(item.get("subscriptionType") or item.get("eventType") or "")
    action = kind.split(".", 1)[1] if "." in kind else ""
    if action == "associationChange":
        return _association(item, _when(item))
    object_type = _object_type(item, kind)
    if object_type in ENGAGEMENT_KINDS and action == "creation":
        activity = ENGAGEMENT_KINDS[object_type]
        crm_id = str(item["objectId"])
        # The payload names the engagement only; its deal and owner come from the API.
        return [
            ActivityChange(
                crm_id=crm_id, event_key=_key(item), occurred_at=_when(item), kind=activity
            ),
            ResyncRequest(
                "HubSpot engagement: fetch its deal and owner", (crm_id,), activity_kind=activity
            ),
        ]
    if object_type in ENGAGEMENT_KINDS and action == "deletion":
        return [
            ActivityChange(
                crm_id=str(item["objectId"]),
                event_key=_key(item),
                occurred_at=_when(item),
                kind=ENGAGEMENT_KINDS[object_type],
                op="deleted",
            )
        ]
    if object_type in ENGAGEMENT_KINDS and action in ("propertyChange", "restore"):
        # One property of an engagement, or its return from the recycle bin: read the
        # whole engagement back (its last-modified time then orders it).
        crm_id = str(item["objectId"])
        return [
            ResyncRequest(
                f"HubSpot engagement {action}: fetch it as it is now",
                (crm_id,),
                activity_kind=ENGAGEMENT_KINDS[object_type],
            )
        ]
    if object_type == COMPANY_OBJECT_TYPE:
        if action == "merge":
            return _company_merge(item, _when(item))
        return [Ignored(f"HubSpot company {action or 'event'}: no deal field changes")]
    if object_type != DEAL_OBJECT_TYPE:
        return [
            Unsupported(
                f"HubSpot {kind or 'event'} for object type {object_type or 'unknown'} "
                "is not handled",
                item,
            )
        ]
    return _deal_event(item, action)


def _deal_event(item: dict[str, Any], action: str) -> list[CrmChange]:
    deal = str(item.get("objectId"))
    when = _when(item)
    simple: dict[str, DealOp] = {"creation": "created", "deletion": "deleted"}
    if action in simple:
        return [DealChange(crm_id=deal, event_key=_key(item), occurred_at=when, op=simple[action])]
    if action == "restore":
        return [
            DealChange(crm_id=deal, event_key=_key(item), occurred_at=when, op="restored"),
            ResyncRequest("HubSpot restored the deal", (deal,)),
        ]
    if action == "propertyChange":
        name = str(item.get("propertyName") or "")
        value = item.get("propertyValue")
        mapped = property_field(name, None if value is None else str(value))
        fields = {mapped[0]: mapped[1]} if mapped else {}
        properties = {} if mapped else {name: value}
        return [
            DealChange(
                crm_id=deal,
                event_key=_key(item),
                occurred_at=when,
                op="updated",
                fields=fields,
                properties=properties,
            )
        ]
    if action == "merge":
        return _merge(item, when)
    return [Unsupported(f"HubSpot deal event {action!r} is not handled", item)]


def _merged(item: dict[str, Any]) -> tuple[str, list[str]]:
    """(the record a merge leaves, the records it merged away)."""
    survivor = str(item.get("newObjectId") or item.get("primaryObjectId") or item.get("objectId"))
    merged = [str(m) for m in item.get("mergedObjectIds") or []]
    primary = str(item.get("primaryObjectId") or survivor)
    return survivor, sorted({*merged, primary} - {survivor})


def _company_merge(item: dict[str, Any], when: datetime) -> list[CrmChange]:
    """Companies merged: the deals of each company merged away now have the survivor as
    their account (`company.merge`, or `object.merge` with `objectTypeId` 0-2)."""
    survivor, gone = _merged(item)
    return [
        AccountMerged(
            merged_id=g, survivor_id=survivor, event_key=_key(item, "merged", g), occurred_at=when
        )
        for g in gone
    ]


def _merge(item: dict[str, Any], when: datetime) -> list[CrmChange]:
    survivor, gone = _merged(item)
    out: list[CrmChange] = [
        DealChange(
            crm_id=g,
            event_key=_key(item, "merged", g),
            occurred_at=when,
            op="deleted",
            merged_into=survivor,
        )
        for g in gone
    ]
    out.append(
        DealChange(
            crm_id=survivor,
            event_key=_key(item, "survivor", survivor),
            occurred_at=when,
            op="restored",
            properties={"merged_from": ",".join(gone)},
        )
    )
    out.append(ResyncRequest("HubSpot merged deals", (survivor,)))
    return out


def _type_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _object_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _company_side(item: dict[str, Any]) -> tuple[dict[int, bool], bool] | None:
    """For a deal-company association event: (the side's HUBSPOT_DEFINED type ids with
    whether each is primary, whether the deal is the from side); None for any other
    association. The object types, when given, decide the side, and a type id counts only
    in the HUBSPOT_DEFINED category: a user-defined label may reuse the number 5 between a
    contact and a company."""
    label = str(item.get("associationType") or "").upper()
    category = str(item.get("associationCategory") or "HUBSPOT_DEFINED").upper()
    type_id = _type_id(item.get("associationTypeId"))
    ends = (str(item.get("fromObjectTypeId") or ""), str(item.get("toObjectTypeId") or ""))
    for side, types, pair in _SIDES:
        if ends != ("", "") and ends != pair:
            continue
        if label == side or ends == pair or (category == "HUBSPOT_DEFINED" and type_id in types):
            return types, pair[0] == DEAL_OBJECT_TYPE
    return None


def _engagement_side(item: dict[str, Any]) -> tuple[ActivityKind, bool] | None:
    """(the activity kind, whether it is the from side) of an engagement-deal association
    event, by its object types; None for any other association."""
    ends = (str(item.get("fromObjectTypeId") or ""), str(item.get("toObjectTypeId") or ""))
    for n, (end, other) in enumerate((ends, ends[::-1])):
        if end in ENGAGEMENT_KINDS and other == DEAL_OBJECT_TYPE:
            return ENGAGEMENT_KINDS[end], n == 0
    return None


def _ids(item: dict[str, Any]) -> tuple[str, str] | Unsupported:
    """(from, to) ids of an association event. Legacy events may name their own object
    only as `objectId`, which is the from side."""
    from_id = _object_id(item.get("fromObjectId")) or _object_id(item.get("objectId"))
    to_id = _object_id(item.get("toObjectId"))
    if from_id is None or to_id is None:
        missing = "fromObjectId (or objectId)" if from_id is None else "toObjectId"
        return Unsupported(f"HubSpot association change without {missing}", item)
    return from_id, to_id


def _association(item: dict[str, Any], when: datetime) -> list[CrmChange]:
    engagement = _engagement_side(item)
    if engagement is not None:
        ids = _ids(item)
        if isinstance(ids, Unsupported):
            return [ids]
        # The activity moved to or from a deal: read it back, as for an engagement edit.
        kind, from_side = engagement
        return [
            ResyncRequest(
                "HubSpot engagement association with a deal changed: fetch it as it is now",
                (ids[0] if from_side else ids[1],),
                activity_kind=kind,
            )
        ]
    company = _company_side(item)
    if company is None:
        what = item.get("associationType") or item.get("associationTypeId")
        return [Ignored(f"HubSpot association {what!r} does not set anything we keep")]
    ids = _ids(item)
    if isinstance(ids, Unsupported):
        return [ids]
    from_id, to_id = ids
    removed = item.get("associationRemoved") is True
    # eventId is not unique and generic events have no objectId: the ends, the type and
    # the direction keep a removal and an addition at the same instant apart.
    key = _key(
        item,
        from_id,
        to_id,
        item.get("associationTypeId") or item.get("associationType"),
        "removed" if removed else "added",
    )
    types, deal_from = company
    deal, account = (from_id, to_id) if deal_from else (to_id, from_id)
    flag = item.get("isPrimaryAssociation")
    type_id = _type_id(item.get("associationTypeId"))
    category = str(item.get("associationCategory") or "HUBSPOT_DEFINED").upper()
    primary = flag if isinstance(flag, bool) else None
    if primary is None and category == "HUBSPOT_DEFINED":
        primary = types.get(type_id or 0)
    elif primary is None:
        primary = False  # a user-defined label is never the primary association
    if primary is False:
        return [
            Ignored(f"company {account} is a secondary company of deal {deal}: not its account")
        ]
    if primary is None:
        return [
            ResyncRequest(
                "HubSpot deal-company association without a primary flag: read the deal's "
                "primary company",
                (deal,),
            )
        ]
    return [
        DealChange(
            crm_id=deal,
            event_key=key,
            occurred_at=when,
            op="updated",
            sequence=REMOVED_SEQUENCE if removed else ADDED_SEQUENCE,
            fields={"account_id": None if removed else account},
        )
    ]


def portal_changes(items: Any, portal: str) -> list[CrmChange]:
    """The changes of one portal's items in a HubSpot batch (a batch may mix portals)."""
    return parse([i for i in events(items) if str(i.get("portalId")) == portal])


def batch(
    items: Any, configured: Collection[str], *, paused: Collection[str] = ()
) -> dict[str, list[CrmChange]]:
    """The changes of a HubSpot batch for each of its portals that is `configured`, in
    portal order; empty when none is. One app's batch may mix portals: those without a
    source must not cost the others their delivery (HubSpot would retry the whole batch),
    so their items are noted as ignored among the first configured portal's changes,
    except a `paused` portal's (a disabled source's), which its own request keeps."""
    known = sorted(portal_ids(items) & set(configured))
    if not known:
        return {}
    by_portal = {portal: portal_changes(items, portal) for portal in known}
    by_portal[known[0]] += [
        Ignored(f"no HubSpot source for portal {item['portalId']} accepts this delivery")
        for item in events(items)
        if str(item["portalId"]) not in configured and str(item["portalId"]) not in paused
    ]
    return by_portal
