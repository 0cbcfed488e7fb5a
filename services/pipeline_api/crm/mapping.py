"""Where a parsed CRM change becomes a canonical event, using its source's mapping.

Pure: the same change and mapping always give the same event (same id, same content), so
replaying a parked change after its mapping was added stores exactly what would have been
stored the first time. Deal ids are qualified by source kind and account, so two CRMs (or
two portals of one) never collide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from services.pipeline_api.crm.changes import ActivityChange, DealChange, Ignored

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
DELETED = "com.salesops.deal.deleted.v1"
ACTIVITY = "com.salesops.activity.logged.v1"
ACTIVITY_DELETED = "com.salesops.activity.deleted.v1"


@dataclass(frozen=True)
class Parked:
    """A change that cannot become an event now. `replayable` ones wait for a mapping and
    are mapped again later; the others (invalid data) wait for an operator."""

    reason: str
    replayable: bool = True


QUALIFIED_FIELDS = ("deal_id", "merged_into", "account_id", "activity_id")
"""The `data` fields that carry ids qualified by `qualified`."""


def qualified(source: SourceIn, crm_id: str) -> str:
    return f"{source.kind}:{source.account_id}:{crm_id}"


@cache
def _crm_kinds() -> frozenset[str]:
    """The registered kinds, read on first use: the registry imports every adapter, and an
    adapter may import this module, so importing the registry here at import time would
    leave one of them partially initialized."""
    from services.pipeline_api.crm import registry

    return frozenset(registry.KINDS)


def in_crm_namespace(value: str) -> bool:
    """Whether `value` has the form of a CRM's qualified id (`hubspot:…`, any case): an id
    only that CRM's webhooks and re-syncs may write, whatever the event's source says."""
    kind, colon, _ = value.partition(":")
    return bool(colon) and kind.strip().lower() in _crm_kinds()


def unqualified(source: SourceIn, deal_id: str) -> str | None:
    """The CRM's own id inside one of `source`'s qualified ids (None if not its id)."""
    prefix = qualified(source, "")
    if not deal_id.startswith(prefix):
        return None
    return deal_id[len(prefix) :] or None


def event_source(source: SourceIn) -> str:
    return f"crm://{source.kind}/{source.account_id}"


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _envelope(
    source: SourceIn,
    *,
    key: str,
    type_: str,
    time: datetime,
    sequence: int | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": key,
        "source": event_source(source),
        "type": type_,
        "time": _time(time),
        "data": data,
    }
    if sequence is not None:
        event["sequence"] = sequence
    return event


def map_deal(
    source: SourceIn, *, change: DealChange, aliases: Mapping[str, str] | None = None
) -> dict[str, Any] | Parked | Ignored:
    """`aliases`: each merged account's survivor, by the CRM's ids (see accounts/merges.py).
    A change naming a merged account names its survivor instead, whenever it is dated:
    the merged account no longer exists in the CRM, so no deal can be left on it."""
    deal_id = qualified(source, change.crm_id)
    if change.op == "deleted":
        data: dict[str, Any] = {"deal_id": deal_id}
        if change.merged_into is not None:
            data["merged_into"] = qualified(source, change.merged_into)
        return _envelope(
            source,
            key=change.event_key,
            type_=DELETED,
            time=change.occurred_at,
            sequence=change.sequence,
            data=data,
        )
    mapping = source.mapping
    data = {"deal_id": deal_id}
    for name, value in change.fields.items():
        if name == "stage":
            if value is None:
                continue
            stage = mapping.stages.get(str(value))
            if stage is None:
                return Parked(f"stage {value!r} is not mapped for source {source.id!r}")
            data["stage"] = stage.stage
            if stage.pipeline:
                data["pipeline"] = stage.pipeline
            if stage.forecast_category and "forecast_category" not in change.fields:
                data["forecast_category"] = stage.forecast_category
            if stage.status and "status" not in change.fields:
                data["status"] = stage.status
        elif name == "pipeline":
            if value is not None and "pipeline" not in data:
                data["pipeline"] = mapping.pipelines.get(str(value), str(value))
        elif name == "owner_id":
            if value in (None, ""):
                data["owner_id"] = None
                continue
            rep = mapping.owners.get(str(value))
            if rep is None:
                return Parked(f"owner {value!r} is not mapped to a rep for source {source.id!r}")
            data["owner_id"] = rep
        elif name == "deal_type":
            if value is not None and str(value) in mapping.deal_types:
                data["deal_type"] = mapping.deal_types[str(value)]
        elif name == "account_id":
            if value in (None, ""):
                data["account_id"] = None
            else:
                data["account_id"] = qualified(source, (aliases or {}).get(str(value), str(value)))
        else:
            data[name] = value
    created = change.op in ("created", "restored")
    needs_currency = "amount" in data and data["amount"] is not None and "currency" not in data
    if needs_currency and (created or not mapping.multi_currency):
        data["currency"] = mapping.default_currency
    kept = {k: v for k, v in change.properties.items() if k in mapping.keep_properties}
    if change.merged_into is not None:
        kept["merged_into"] = qualified(source, change.merged_into)
    if kept:
        data["properties"] = kept
    if not created and len(data) == 1:
        # Nothing an operator could act on (a custom field the source does not keep, say):
        # acknowledged and noted on the archived request, never parked.
        return Ignored(f"change {change.event_key!r} carries no field we keep")
    return _envelope(
        source,
        key=change.event_key,
        type_=CREATED if created else UPDATED,
        time=change.occurred_at,
        sequence=change.sequence,
        data=data,
    )


def map_activity(source: SourceIn, *, change: ActivityChange) -> dict[str, Any] | Parked:
    activity_id = qualified(source, change.crm_id)
    # Ordered by when the CRM changed the record, not when the activity happens: a meeting
    # set for next week, then moved or deleted today, must give way to today's change.
    time = change.changed_at or change.occurred_at
    if change.op == "deleted":
        return _envelope(
            source,
            key=change.event_key,
            type_=ACTIVITY_DELETED,
            time=time,
            sequence=None,
            data={"activity_id": activity_id},
        )
    data: dict[str, Any] = {
        "activity_id": activity_id,
        "kind": change.kind,
        "occurred_at": _time(change.occurred_at),
        "properties": {k: v for k, v in change.properties.items() if v is not None},
    }
    if change.deal_crm_id:
        data["deal_id"] = qualified(source, change.deal_crm_id)
    if change.account_id:
        data["account_id"] = qualified(source, change.account_id)
    if change.rep_crm_id:
        rep = source.mapping.owners.get(str(change.rep_crm_id))
        if rep is None:
            return Parked(
                f"owner {change.rep_crm_id!r} is not mapped to a rep for source {source.id!r}"
            )
        data["rep_id"] = rep
    return _envelope(
        source,
        key=change.event_key,
        type_=ACTIVITY,
        time=time,
        sequence=None,
        data=data,
    )
