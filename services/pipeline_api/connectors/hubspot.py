"""HubSpot webhook batches (Webhooks API v3 payloads) as `CrmChange`s. Pure.

What HubSpot really sends (../shared/reference/crm-webhooks.md, section 1): an array of
events named by `subscriptionType` (docs: `eventType`); `propertyValue` always a string;
`eventId` not unique; no ordering; a creation as `deal.creation` plus one
`deal.propertyChange` per property at the same `occurredAt`. Each property change becomes
its own one-field change, so "last `occurredAt` wins" holds per (deal, property) in the
projection's fold; merges and restores also ask for a re-sync, because the payload does
not carry the resulting deal's properties.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.pipeline_api.connectors.changes import (
    ActivityChange,
    ActivityKind,
    CrmChange,
    DealChange,
    DealOp,
    ResyncRequest,
    Unsupported,
)
from shared.money import MoneyError, amount_text

DEAL_OBJECT_TYPE = "0-3"
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


def portal_ids(body: Any) -> set[str]:
    if not isinstance(body, list) or not body:
        raise HubSpotError("a HubSpot webhook body is a non-empty JSON array of events")
    ids = set()
    for n, item in enumerate(body):
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
    type_id = item.get("objectTypeId")
    return str(type_id) if type_id is not None else None


def parse(body: Any) -> list[CrmChange]:
    portal_ids(body)
    out: list[CrmChange] = []
    for item in body:
        try:
            out.extend(_item(item))
        except (HubSpotError, ValueError, KeyError, OverflowError) as exc:
            # One unreadable item must not fail the batch: HubSpot would redeliver it all
            # and count the failure towards disabling the subscription.
            out.append(Unsupported(f"HubSpot event could not be read: {exc}", item))
    return out


def _item(item: dict[str, Any]) -> list[CrmChange]:
    kind = str(item.get("subscriptionType") or item.get("eventType") or "")
    action = kind.split(".", 1)[1] if "." in kind else ""
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
    if action == "associationChange":
        return _association(item, deal, when)
    return [Unsupported(f"HubSpot deal event {action!r} is not handled", item)]


def _merge(item: dict[str, Any], when: datetime) -> list[CrmChange]:
    survivor = str(item.get("newObjectId") or item.get("primaryObjectId") or item.get("objectId"))
    merged = [str(m) for m in item.get("mergedObjectIds") or []]
    primary = str(item.get("primaryObjectId") or survivor)
    gone = sorted({*merged, primary} - {survivor})
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


def _association(item: dict[str, Any], deal: str, when: datetime) -> list[CrmChange]:
    if item.get("associationType") != "DEAL_TO_COMPANY":
        return [Unsupported(f"association {item.get('associationType')!r} is not tracked", item)]
    if item.get("isPrimaryAssociation") is False:
        return [Unsupported("only the primary company association sets the account", item)]
    deal = str(item.get("fromObjectId") or deal)
    account = None if item.get("associationRemoved") else str(item.get("toObjectId"))
    return [
        DealChange(
            crm_id=deal,
            event_key=_key(item),
            occurred_at=when,
            op="updated",
            fields={"account_id": account},
        )
    ]
