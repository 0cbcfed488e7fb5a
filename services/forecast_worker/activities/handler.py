"""Where activity events become activity rows, inside the consumer's transaction.

Logged and deleted events are keyed differently (by deal and by activity), so they travel
on different partitions and may arrive in any order; each statement keeps the newer of two
events per activity, so which handler runs first does not change the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.activities import repository
from shared.dispatch import Applied
from shared.events import ActivityDeleted, ActivityLogged, CanonicalEvent

LOGGED = "com.salesops.activity.logged.v1"
DELETED = "com.salesops.activity.deleted.v1"


def to_activity_row(event: CanonicalEvent) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, ActivityLogged)
    return {
        "activity_id": payload.activity_id,
        "kind": payload.kind,
        "deal_id": payload.deal_id,
        "account_id": payload.account_id,
        "rep_id": payload.rep_id,
        "occurred_at": payload.occurred_at,
        "properties": orjson.dumps(payload.properties).decode(),
        "event_time": event.envelope.time,
        "event_source": event.envelope.source,
        "event_id": event.envelope.id,
    }


def to_activity_deletion(event: CanonicalEvent) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, ActivityDeleted)
    return {
        "activity_id": payload.activity_id,
        "deleted_at": payload.deleted_at or event.envelope.time,
        "event_time": event.envelope.time,
        "event_source": event.envelope.source,
        "event_id": event.envelope.id,
    }


async def log_activities(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    await repository.upsert_activities(conn, rows=[to_activity_row(e) for e in events])
    return Applied(new=len(events))


async def delete_activities(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    await repository.delete_activities(conn, rows=[to_activity_deletion(e) for e in events])
    return Applied(new=len(events))
