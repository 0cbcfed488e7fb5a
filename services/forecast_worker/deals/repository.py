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
from services.forecast_worker.models import Deal, DealVersion
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


async def insert_changes(conn: AsyncConnection, *, changes: Sequence[Change]) -> list[Change]:
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


async def load_changes(conn: AsyncConnection, *, deal_id: str) -> list[Change]:
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


async def load_current(conn: AsyncConnection, *, deal_ids: Iterable[str]) -> dict[str, Version]:
    """The open (latest) version of each deal, locked for this transaction."""
    rows = await conn.execute(
        text(
            "SELECT * FROM forecast.deals WHERE deal_id = ANY(CAST(:ids AS text[])) "
            "ORDER BY deal_id FOR UPDATE"
        ),
        {"ids": list(deal_ids)},
    )
    return {r.deal_id: _version_from_row(r._mapping) for r in rows}


async def replace_history(
    conn: AsyncConnection, *, deal_id: str, versions: Sequence[Version]
) -> None:
    await conn.execute(
        text("DELETE FROM forecast.deal_versions WHERE deal_id = :deal_id"), {"deal_id": deal_id}
    )
    await write_versions(conn, versions=versions)


async def write_versions(conn: AsyncConnection, *, versions: Sequence[Version]) -> None:
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


def as_of_clause(as_of: datetime) -> Any:
    return and_(
        DealVersion.valid_from <= as_of,
        or_(DealVersion.valid_to.is_(None), DealVersion.valid_to > as_of),
    )


async def list_deals(
    session: AsyncSession,
    *,
    flt: DealFilter,
    as_of: datetime | None,
    after: str | None,
    limit: int,
) -> Sequence[Deal | DealVersion]:
    model: type[Deal] | type[DealVersion] = _deal_table(as_of)
    query = select(model).order_by(model.deal_id).limit(limit)
    if as_of is not None:
        query = query.where(as_of_clause(as_of))
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
    session: AsyncSession, *, deal_id: str, as_of: datetime | None
) -> Deal | DealVersion | None:
    if as_of is None:
        return await session.get(Deal, deal_id)
    query = select(DealVersion).where(DealVersion.deal_id == deal_id, as_of_clause(as_of))
    return (await session.execute(query)).scalar_one_or_none()


async def deal_history(
    session: AsyncSession, *, deal_id: str, as_of: datetime | None
) -> Sequence[DealVersion]:
    query = select(DealVersion).where(DealVersion.deal_id == deal_id).order_by(DealVersion.version)
    if as_of is not None:
        query = query.where(DealVersion.valid_from <= as_of)
    return (await session.execute(query)).scalars().all()
