"""All SQL of the activities. Functions take a connection already inside a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# The ordering rule (shared/ordering.py, without `sequence`, which activities lack): is the
# incoming event newer than the one that last wrote the row?
_NEWER_ACTIVITY = (
    "(EXCLUDED.event_time, EXCLUDED.event_source, EXCLUDED.event_id)"
    " > (a.event_time, a.event_source, a.event_id)"
)


async def upsert_activities(conn: AsyncConnection, *, rows: Sequence[dict[str, Any]]) -> None:
    """Store activities; a later event for the same activity replaces an older one only.

    A newer logged event also clears `deleted_at`: the CRM restored the activity. An older
    one is ignored, except that it fills in a row that so far holds only a deletion, so
    the deleted activity keeps its details without coming back.
    """
    if not rows:
        return
    newer = _NEWER_ACTIVITY
    await conn.execute(
        text(
            f"""
            INSERT INTO forecast.activities AS a (activity_id, kind, deal_id, account_id,
                rep_id, occurred_at, properties, event_time, event_source, event_id)
            VALUES (:activity_id, :kind, :deal_id, :account_id, :rep_id, :occurred_at,
                CAST(:properties AS jsonb), :event_time, :event_source, :event_id)
            ON CONFLICT (activity_id) DO UPDATE SET
                kind = EXCLUDED.kind, deal_id = EXCLUDED.deal_id,
                account_id = EXCLUDED.account_id, rep_id = EXCLUDED.rep_id,
                occurred_at = EXCLUDED.occurred_at, properties = EXCLUDED.properties,
                deleted_at = CASE WHEN {newer} THEN NULL ELSE a.deleted_at END,
                event_time = CASE WHEN {newer} THEN EXCLUDED.event_time ELSE a.event_time END,
                event_source = CASE WHEN {newer}
                    THEN EXCLUDED.event_source ELSE a.event_source END,
                event_id = CASE WHEN {newer} THEN EXCLUDED.event_id ELSE a.event_id END
            WHERE {newer} OR a.kind IS NULL
            """
        ),
        list(rows),
    )


async def delete_activities(conn: AsyncConnection, *, rows: Sequence[dict[str, Any]]) -> None:
    """Mark activities deleted, unless a newer event wrote them (a restore that came first).

    An activity not seen yet gets a row holding only the deletion, which an older logged
    event arriving later fills in but does not bring back.
    """
    if not rows:
        return
    await conn.execute(
        text(
            f"""
            INSERT INTO forecast.activities AS a (activity_id, properties, deleted_at,
                event_time, event_source, event_id)
            VALUES (:activity_id, '{{}}', :deleted_at, :event_time, :event_source, :event_id)
            ON CONFLICT (activity_id) DO UPDATE SET
                deleted_at = EXCLUDED.deleted_at, event_time = EXCLUDED.event_time,
                event_source = EXCLUDED.event_source, event_id = EXCLUDED.event_id
            WHERE {_NEWER_ACTIVITY}
            """
        ),
        list(rows),
    )
