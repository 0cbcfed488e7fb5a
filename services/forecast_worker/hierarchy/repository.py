"""All SQL of the hierarchy. Functions take a connection or session, then keyword arguments.

`assignment_rows` is the set-based form for roll-ups: the rep, its team and the team's
manager and region valid on a date that may be a column of the joining query, so each
deal can be grouped by the hierarchy of its own day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    delete,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.forecast_worker.hierarchy.intervals import Interval, Upsert
from services.forecast_worker.hierarchy.models import IntervalColumns, RepAssignment, Team
from shared.ordering import OrderKey

_UNORDERED = datetime(1970, 1, 1, tzinfo=UTC)
EntityKind = Literal["rep", "team"]
_TABLES = {"rep": RepAssignment, "team": Team}
_ID_COLUMNS = {"rep": "rep_id", "team": "team_id"}


async def insert_changes(
    conn: AsyncConnection, *, kind: EntityKind, upserts: Sequence[Upsert]
) -> list[Upsert]:
    """Store upserts not seen before; return only those (the rest are redeliveries)."""
    if not upserts:
        return []
    rows = await conn.execute(
        text(
            """
            INSERT INTO forecast.hierarchy_changes
                (source, event_id, kind, entity_id, effective_from, event_time, sequence, fields)
            SELECT s, i, :kind, e, f, t, q, d FROM unnest(CAST(:sources AS text[]),
                CAST(:ids AS text[]), CAST(:entities AS text[]), CAST(:effective AS date[]),
                CAST(:times AS timestamptz[]), CAST(:seqs AS numeric[]),
                CAST(:fields AS jsonb[])) AS u(s, i, e, f, t, q, d)
            ON CONFLICT (source, event_id) DO NOTHING
            RETURNING source, event_id
            """
        ),
        {
            "kind": kind,
            "sources": [u.key.source for u in upserts],
            "ids": [u.key.event_id for u in upserts],
            "entities": [u.entity_id for u in upserts],
            "effective": [u.effective for u in upserts],
            "times": [u.key.time for u in upserts],
            "seqs": [u.key.sequence for u in upserts],
            "fields": [orjson.dumps(dict(u.fields)).decode() for u in upserts],
        },
    )
    fresh = {(r.source, r.event_id) for r in rows}
    return [u for u in upserts if (u.key.source, u.key.event_id) in fresh]


async def load_changes(conn: AsyncConnection, *, kind: EntityKind, entity_id: str) -> list[Upsert]:
    rows = await conn.execute(
        text(
            "SELECT source, event_id, effective_from, event_time, sequence, fields "
            "FROM forecast.hierarchy_changes WHERE kind = :kind AND entity_id = :entity_id"
        ),
        {"kind": kind, "entity_id": entity_id},
    )
    return [
        Upsert(
            entity_id=entity_id,
            effective=r.effective_from,
            key=OrderKey(r.event_time, int(r.sequence), r.source, r.event_id),
            fields=r.fields,
        )
        for r in rows
    ]


async def replace_intervals(
    conn: AsyncConnection, *, kind: EntityKind, entity_id: str, intervals: Sequence[Interval]
) -> None:
    table = _TABLES[kind]
    id_column = getattr(table, _ID_COLUMNS[kind])
    await conn.execute(delete(table).where(id_column == entity_id))
    if intervals:
        await conn.execute(insert(table), [_interval_row(kind, i) for i in intervals])


def _interval_row(kind: EntityKind, interval: Interval) -> dict[str, Any]:
    return {
        **interval.fields,
        _ID_COLUMNS[kind]: interval.entity_id,
        "valid_from": interval.valid_from,
        "valid_to": interval.valid_to,
        "event_source": interval.cause.source,
        "event_id": interval.cause.event_id,
    }


async def team_intervals(conn: AsyncConnection) -> list[Interval]:
    """Every team's intervals with its parent: what a cycle check walks."""
    rows = await conn.execute(
        select(
            Team.team_id,
            Team.valid_from,
            Team.valid_to,
            Team.parent_team_id,
            Team.event_source,
            Team.event_id,
        )
    )
    return [
        Interval(
            r.team_id,
            r.valid_from,
            r.valid_to,
            {"parent_team_id": r.parent_team_id},
            # Only the identity of the cause is stored; a cycle check does not order by it.
            OrderKey(_UNORDERED, -1, r.event_source, r.event_id),
        )
        for r in rows
    ]


_ROW_COLUMNS = (
    RepAssignment.rep_id,
    RepAssignment.name.label("rep_name"),
    RepAssignment.team_id,
    Team.name.label("team_name"),
    Team.manager_id,
    Team.manager_name,
    Team.region,
    RepAssignment.active,
    RepAssignment.valid_from,
    RepAssignment.valid_to,
)


def valid_on(table: type[IntervalColumns], day: SQLColumnExpression[date]) -> ColumnElement[bool]:
    """`valid_from <= day < coalesce(valid_to, 'infinity')`: the version in force on `day`."""
    return and_(table.valid_from <= day, or_(table.valid_to.is_(None), day < table.valid_to))


def assignment_rows(day: SQLColumnExpression[date] | date) -> Select[*tuple[Any, ...]]:
    """Each rep's row on `day` with its team's, one row per rep (its team may be unknown).

    `day` may be a column of an enclosing query (a lateral join per deal), or a date."""
    at = literal(day) if isinstance(day, date) else day
    return (
        select(*_ROW_COLUMNS)
        .select_from(RepAssignment)
        .outerjoin(Team, and_(Team.team_id == RepAssignment.team_id, valid_on(Team, at)))
        .where(valid_on(RepAssignment, at))
    )


async def hierarchy_as_of(session: AsyncSession, *, at: date) -> list[Any]:
    rows = await session.execute(assignment_rows(at).order_by(RepAssignment.rep_id))
    return list(rows)


async def assignments_as_of(
    conn: AsyncConnection | AsyncSession, *, at: date
) -> dict[str, tuple[str | None, str | None, str | None]]:
    """{rep_id: (team_id, manager_id, region)} as the hierarchy stood on `at`."""
    rows = await conn.execute(assignment_rows(at))
    return {r.rep_id: (r.team_id, r.manager_id, r.region) for r in rows}


async def rep_history(session: AsyncSession, *, rep_id: str) -> list[Any]:
    """Every interval of a rep, oldest first, each with its team as of the interval's start."""
    rows = await session.execute(
        select(*_ROW_COLUMNS)
        .select_from(RepAssignment)
        .outerjoin(
            Team,
            and_(Team.team_id == RepAssignment.team_id, valid_on(Team, RepAssignment.valid_from)),
        )
        .where(RepAssignment.rep_id == rep_id)
        .order_by(RepAssignment.valid_from)
    )
    return list(rows)
