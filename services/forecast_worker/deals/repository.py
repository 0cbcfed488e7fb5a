"""All SQL of the deal projection. Functions take a connection already inside a transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.forecast_worker.deals.projection import Change, DealState, Version
from services.forecast_worker.models import DeadLetter, Deal, DealVersion
from shared.deal_fields import DEAL_FIELDS, FIELD_NAMES, DealField, Kind
from shared.ordering import OrderKey

_ROW_COLUMNS = (
    "deal_id",
    *FIELD_NAMES,
    "deleted",
    "properties",
    "version",
    "valid_from",
    "sequence",
    "event_source",
    "event_id",
)


async def insert_changes(conn: AsyncConnection, changes: Sequence[Change]) -> list[Change]:
    """Store changes not seen before; return only those (the rest are redeliveries)."""
    if not changes:
        return []
    rows = await conn.execute(
        text(
            """
            INSERT INTO forecast.deal_changes
                (source, event_id, deal_id, event_type, event_time, sequence, fields)
            SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[]),
                CAST(:deals AS text[]), CAST(:types AS text[]), CAST(:times AS timestamptz[]),
                CAST(:seqs AS numeric[]), CAST(:fields AS jsonb[]))
            ON CONFLICT (source, event_id) DO NOTHING
            RETURNING source, event_id
            """
        ),
        {
            "sources": [c.key.source for c in changes],
            "ids": [c.key.event_id for c in changes],
            "deals": [c.deal_id for c in changes],
            "types": [c.event_type for c in changes],
            "times": [c.key.time for c in changes],
            "seqs": [c.key.sequence for c in changes],
            "fields": [orjson.dumps(c.fields).decode() for c in changes],
        },
    )
    fresh = {(r.source, r.event_id) for r in rows}
    out: list[Change] = []
    for c in changes:
        ident = (c.key.source, c.key.event_id)
        if ident in fresh:
            fresh.discard(ident)
            out.append(c)
    return out


async def load_changes(conn: AsyncConnection, deal_id: str) -> list[Change]:
    rows = await conn.execute(
        text(
            "SELECT source, event_id, event_type, event_time, sequence, fields "
            "FROM forecast.deal_changes WHERE deal_id = :deal_id"
        ),
        {"deal_id": deal_id},
    )
    return [
        Change(
            key=OrderKey(r.event_time, int(r.sequence), r.source, r.event_id),
            deal_id=deal_id,
            event_type=r.event_type,
            fields=r.fields,
        )
        for r in rows
    ]


async def load_current(conn: AsyncConnection, deal_ids: Iterable[str]) -> dict[str, Version]:
    """The open (latest) version of each deal, locked for this transaction."""
    rows = await conn.execute(
        text(
            "SELECT * FROM forecast.deals WHERE deal_id = ANY(CAST(:ids AS text[])) "
            "ORDER BY deal_id FOR UPDATE"
        ),
        {"ids": list(deal_ids)},
    )
    return {r.deal_id: _version_from_row(r._mapping) for r in rows}


async def replace_history(conn: AsyncConnection, deal_id: str, versions: Sequence[Version]) -> None:
    await conn.execute(
        text("DELETE FROM forecast.deal_versions WHERE deal_id = :deal_id"), {"deal_id": deal_id}
    )
    await write_versions(conn, versions)


async def write_versions(conn: AsyncConnection, versions: Sequence[Version]) -> None:
    """Insert new versions and close superseded ones, then refresh the current rows."""
    if not versions:
        return
    rows = [{**_row(v), "valid_to": v.valid_to} for v in versions]
    cols = (*_ROW_COLUMNS, "valid_to")
    await conn.execute(
        text(
            f"INSERT INTO forecast.deal_versions ({', '.join(cols)}) "
            f"VALUES ({', '.join(':' + c for c in cols)}) "
            "ON CONFLICT (deal_id, version) DO UPDATE SET valid_to = EXCLUDED.valid_to"
        ),
        rows,
    )
    latest: dict[str, Version] = {}
    for v in versions:
        if v.valid_to is None:
            latest[v.state.deal_id] = v
    if latest:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _ROW_COLUMNS if c != "deal_id")
        await conn.execute(
            text(
                f"INSERT INTO forecast.deals ({', '.join(_ROW_COLUMNS)}, updated_at) "
                f"VALUES ({', '.join(':' + c for c in _ROW_COLUMNS)}, now()) "
                f"ON CONFLICT (deal_id) DO UPDATE SET {updates}, updated_at = now()"
            ),
            [_row(v) for v in latest.values()],
        )


# The ordering rule (shared/ordering.py, without `sequence`, which activities lack): is the
# incoming event newer than the one that last wrote the row?
_NEWER_ACTIVITY = (
    "(EXCLUDED.event_time, EXCLUDED.event_source, EXCLUDED.event_id)"
    " > (a.event_time, a.event_source, a.event_id)"
)


async def upsert_activities(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
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


async def delete_activities(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
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


@dataclass(frozen=True)
class StoredOffset:
    next_offset: int
    incarnation: str | None


async def load_offsets(
    conn: AsyncConnection, group_id: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], StoredOffset]:
    rows = await conn.execute(
        text(
            "SELECT topic, partition, next_offset, incarnation FROM forecast.consumer_offsets "
            "WHERE group_id = :g"
        ),
        {"g": group_id},
    )
    wanted = set(partitions)
    return {
        (r.topic, r.partition): StoredOffset(r.next_offset, r.incarnation)
        for r in rows
        if (r.topic, r.partition) in wanted
    }


async def store_offsets(
    conn: AsyncConnection,
    group_id: str,
    offsets: dict[tuple[str, int], int],
    incarnation: str | None,
) -> None:
    if not offsets:
        return
    await conn.execute(
        text(
            """
            INSERT INTO forecast.consumer_offsets (group_id, topic, partition, next_offset,
                incarnation)
            VALUES (:g, :t, :p, :o, :i)
            ON CONFLICT (group_id, topic, partition) DO UPDATE SET
                next_offset = EXCLUDED.next_offset, incarnation = EXCLUDED.incarnation
            """
        ),
        [
            {"g": group_id, "t": t, "p": p, "o": o, "i": incarnation}
            for (t, p), o in offsets.items()
        ],
    )


async def insert_dead_letters(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    await conn.execute(
        text(
            """
            INSERT INTO forecast.dead_letters (topic, partition, "offset", event_source,
                event_id, reason, payload)
            VALUES (:topic, :partition, :offset, :event_source, :event_id, :reason, :payload)
            """
        ),
        list(rows),
    )


def _row(version: Version) -> dict[str, Any]:
    values = version.state.values
    row = {f.name: _column_value(f, values.get(f.name)) for f in DEAL_FIELDS}
    row.update(
        deal_id=version.state.deal_id,
        deleted=version.state.deleted,
        properties=orjson.dumps(version.state.properties).decode(),
        version=version.number,
        valid_from=version.valid_from,
        sequence=version.cause.sequence,
        event_source=version.cause.source,
        event_id=version.cause.event_id,
    )
    return row


def _column_value(field: DealField, value: Any) -> Any:
    """A value in the fold's JSON form as its column takes it."""
    if value is None:
        return field.stored_default
    if field.kind is Kind.MONEY:
        return Decimal(value)
    if field.kind is Kind.DATE:
        return date.fromisoformat(value) if value else None
    if field.kind is Kind.DATETIME:
        return datetime.fromisoformat(value) if value else None
    if field.kind is Kind.SPLITS:
        return orjson.dumps(value).decode()
    return value


def _json_value(field: DealField, value: Any) -> Any:
    """A column's value (not null) in the fold's JSON form."""
    if field.kind is Kind.MONEY:
        return format(value, "f")
    if field.kind in (Kind.DATE, Kind.DATETIME):
        return value.isoformat()
    return value


def _version_from_row(row: Any) -> Version:
    values = {f.name: _json_value(f, row[f.name]) for f in DEAL_FIELDS if row[f.name] is not None}
    state = DealState(row["deal_id"], values, dict(row["properties"] or {}), row["deleted"])
    cause = OrderKey(row["valid_from"], int(row["sequence"]), row["event_source"], row["event_id"])
    return Version(row["version"], row["valid_from"], None, state, cause)


@dataclass(frozen=True)
class DealFilter:
    owner_id: str | None = None
    stage: str | None = None
    status: str | None = None
    close_date_from: date | None = None
    close_date_to: date | None = None
    updated_since: datetime | None = None
    include_deleted: bool = False


def _deal_table(as_of: datetime | None) -> type[Deal] | type[DealVersion]:
    return DealVersion if as_of is not None else Deal


def _as_of_clause(as_of: datetime) -> Any:
    return and_(
        DealVersion.valid_from <= as_of,
        or_(DealVersion.valid_to.is_(None), DealVersion.valid_to > as_of),
    )


async def list_deals(
    session: AsyncSession,
    flt: DealFilter,
    *,
    as_of: datetime | None,
    after: str | None,
    limit: int,
) -> Sequence[Deal | DealVersion]:
    model: type[Deal] | type[DealVersion] = _deal_table(as_of)
    query = select(model).order_by(model.deal_id).limit(limit)
    if as_of is not None:
        query = query.where(_as_of_clause(as_of))
    if after is not None:
        query = query.where(model.deal_id > after)
    fields = model.__table__.c
    if flt.owner_id is not None:
        query = query.where(fields.owner_id == flt.owner_id)
    if flt.stage is not None:
        query = query.where(fields.stage == flt.stage)
    if flt.status is not None:
        query = query.where(fields.status == flt.status)
    if flt.close_date_from is not None:
        query = query.where(fields.close_date >= flt.close_date_from)
    if flt.close_date_to is not None:
        query = query.where(fields.close_date <= flt.close_date_to)
    if flt.updated_since is not None and model is Deal:
        query = query.where(Deal.updated_at > flt.updated_since)
    if not flt.include_deleted:
        query = query.where(model.deleted.is_(False))
    rows: Sequence[Deal | DealVersion] = (await session.execute(query)).scalars().all()  # type: ignore[assignment]
    return rows


async def get_deal(
    session: AsyncSession, deal_id: str, *, as_of: datetime | None
) -> Deal | DealVersion | None:
    if as_of is None:
        return await session.get(Deal, deal_id)
    query = select(DealVersion).where(DealVersion.deal_id == deal_id, _as_of_clause(as_of))
    return (await session.execute(query)).scalar_one_or_none()


async def deal_history(
    session: AsyncSession, deal_id: str, *, as_of: datetime | None
) -> Sequence[DealVersion]:
    query = select(DealVersion).where(DealVersion.deal_id == deal_id).order_by(DealVersion.version)
    if as_of is not None:
        query = query.where(DealVersion.valid_from <= as_of)
    return (await session.execute(query)).scalars().all()


async def list_dead_letters(
    session: AsyncSession, *, after: int | None, limit: int, include_replayed: bool
) -> Sequence[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id).limit(limit)
    if after is not None:
        query = query.where(DeadLetter.id > after)
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    return (await session.execute(query)).scalars().all()


async def get_dead_letter(conn: AsyncConnection, letter_id: int) -> Any:
    row = await conn.execute(
        text("SELECT * FROM forecast.dead_letters WHERE id = :id FOR UPDATE"), {"id": letter_id}
    )
    return row.mappings().one_or_none()


async def mark_replayed(conn: AsyncConnection, letter_id: int) -> None:
    await conn.execute(
        text("UPDATE forecast.dead_letters SET replayed_at = now() WHERE id = :id"),
        {"id": letter_id},
    )
