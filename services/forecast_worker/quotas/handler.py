"""Where `quota.set` events become quotas: the newest event per quota_id by the ordering
rule wins, so a late or repeated event changes nothing. Every event is kept beside it
(`quota_changes`), for the roll-up as of a past instant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.quotas import repository
from shared.dispatch import Applied
from shared.events import CanonicalEvent, QuotaSet

QUOTA_SET = "com.salesops.quota.set.v1"


def to_quota_row(event: CanonicalEvent) -> dict[str, Any]:
    env = event.envelope
    payload = event.payload
    assert isinstance(payload, QuotaSet)
    return {
        **payload.model_dump(),
        "event_time": env.time,
        "sequence": env.sequence if env.sequence is not None else -1,
        "event_source": env.source,
        "event_id": env.id,
    }


async def set_quotas(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    rows = [to_quota_row(e) for e in events]
    await repository.insert_quota_changes(conn, rows=rows)
    written = await repository.upsert_quotas(conn, rows=rows)
    return Applied(new=written, duplicates=len(events) - written)
