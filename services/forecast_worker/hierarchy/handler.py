"""Where rep and team upserts become the effective-dated hierarchy, inside the consumer's
transaction.

New events are stored deduped by identity, then each entity they name is rebuilt from all
its events (`intervals.build_intervals`), so a late or repeated event changes nothing the
order of arrival could. A team event that would make a team its own ancestor on some date
raises `HierarchyCycle`: the consumer then applies the batch record by record and
dead-letters that event, with the path in its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.hierarchy import repository
from services.forecast_worker.hierarchy.intervals import Upsert, build_intervals, find_cycle
from services.forecast_worker.hierarchy.repository import EntityKind
from shared.dispatch import Applied
from shared.events import CanonicalEvent, RepUpserted, TeamUpserted
from shared.ordering import OrderKey

REP_UPSERTED = "com.salesops.rep.upserted.v1"
TEAM_UPSERTED = "com.salesops.team.upserted.v1"
TEAM_UPSERTED_V2 = "com.salesops.team.upserted.v2"
TYPES = (REP_UPSERTED, TEAM_UPSERTED, TEAM_UPSERTED_V2)


def to_upsert(event: CanonicalEvent) -> tuple[EntityKind, Upsert]:
    """The event as an upsert. `effective_from` defaults to the day of the event's time;
    a field its type does not define (v1's region) is absent, so it keeps its value."""
    env = event.envelope
    payload = event.payload
    assert isinstance(payload, RepUpserted | TeamUpserted)
    kind: EntityKind = "rep" if isinstance(payload, RepUpserted) else "team"
    fields: dict[str, Any] = payload.model_dump(mode="json", exclude={"effective_from"})
    entity_id = fields.pop("rep_id" if kind == "rep" else "team_id")
    upsert = Upsert(
        entity_id=entity_id,
        effective=payload.effective_from or env.time.date(),
        key=OrderKey.of(time=env.time, sequence=env.sequence, source=env.source, event_id=env.id),
        fields=fields,
    )
    return kind, upsert


async def apply_hierarchy(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    by_kind: dict[EntityKind, list[Upsert]] = {"rep": [], "team": []}
    for event in events:
        kind, upsert = to_upsert(event)
        by_kind[kind].append(upsert)
    new = 0
    for kind, upserts in by_kind.items():
        fresh = await repository.insert_changes(conn, kind=kind, upserts=upserts)
        new += len(fresh)
        for entity_id in sorted({u.entity_id for u in fresh}):
            everything = await repository.load_changes(conn, kind=kind, entity_id=entity_id)
            await repository.replace_intervals(
                conn, kind=kind, entity_id=entity_id, intervals=build_intervals(everything)
            )
        if kind == "team" and fresh:
            teams = await repository.team_intervals(conn)
            for team_id in sorted({u.entity_id for u in fresh}):
                if cycle := find_cycle(teams, team_id):
                    raise cycle
    return Applied(new=new, duplicates=len(events) - new)
