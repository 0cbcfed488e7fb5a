"""All SQL of the deal projection. Functions take a connection already inside a transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import TextClause, and_, or_, select, text
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
        _INSERT_CHANGES,
        {
            "rows": orjson.dumps(
                [
                    {
                        "source": c.key.source,
                        "event_id": c.key.event_id,
                        "deal_id": c.deal_id,
                        "event_type": c.event_type,
                        "event_time": c.key.time,
                        "sequence": str(c.key.sequence),
                        "fields": c.fields,
                    }
                    for c in changes
                ]
            ).decode()
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


async def load_changes(
    conn: AsyncConnection, *, deal_ids: Iterable[str]
) -> dict[str, list[Change]]:
    """Every stored change of each deal, in one statement."""
    rows = await conn.execute(
        text(
            "SELECT deal_id, source, event_id, event_type, event_time, sequence, fields "
            "FROM forecast.deal_changes WHERE deal_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": list(deal_ids)},
    )
    out: dict[str, list[Change]] = {}
    for r in rows:
        out.setdefault(r.deal_id, []).append(
            Change(
                key=OrderKey(r.event_time, int(r.sequence), r.source, r.event_id),
                deal_id=r.deal_id,
                event_type=r.event_type,
                fields=r.fields,
            )
        )
    return out


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


def _rows_of(table: str) -> str:
    """`SELECT * FROM` one JSON array parameter read as rows of `table`: a whole batch in one
    statement and one parameter. The values go in their JSON form (amounts as decimal
    strings, dates as ISO text, which is how the fold keeps them) and PostgreSQL's input
    functions convert them, so the driver encodes one string instead of checking and
    encoding each element of one array per column."""
    return f"SELECT * FROM json_populate_recordset(CAST(NULL AS {table}), CAST(:rows AS json))"


_CHANGE_COLUMNS = "source, event_id, deal_id, event_type, event_time, sequence, fields"
_INSERT_CHANGES = text(
    f"INSERT INTO forecast.deal_changes ({_CHANGE_COLUMNS}) "
    f"SELECT {_CHANGE_COLUMNS} FROM ({_rows_of('forecast.deal_changes')}) AS new "
    "ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id"
)
_STORED_DEFAULTS = {f.name: f.stored_default for f in DEAL_FIELDS if f.stored_default is not None}
_DATED = tuple(f.name for f in DEAL_FIELDS if f.kind in (Kind.DATE, Kind.DATETIME))


def _json_row(v: Version) -> dict[str, Any]:
    """A version as a row of `forecast.deal_versions` for a JSON array (see `_rows_of`):
    values stay in the fold's JSON form, and PostgreSQL's input functions type them. The
    current row of `forecast.deals` is the same but for `valid_to`, which it ignores."""
    state, cause = v.state, v.cause
    row = {**_STORED_DEFAULTS, **state.values}
    for name in _DATED:
        if row.get(name) == "":
            row[name] = None
    row.update(
        deal_id=state.deal_id,
        deleted=state.deleted,
        properties=state.properties,
        version=v.number,
        valid_from=v.valid_from,
        sequence=str(cause.sequence),
        event_source=cause.source,
        event_id=cause.event_id,
        valid_to=v.valid_to,
    )
    return row


def _json(rows: Sequence[dict[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


_VERSION_COLUMNS = (*_ROW_COLUMNS, "valid_to")
_VERSION_KEY = ("deal_id", "version")


def _insert_versions(on_conflict: Sequence[str]) -> TextClause:
    columns = ", ".join(_VERSION_COLUMNS)
    return text(
        f"INSERT INTO forecast.deal_versions ({columns}) "
        f"SELECT {columns} FROM ({_rows_of('forecast.deal_versions')}) AS new "
        "ON CONFLICT (deal_id, version) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in on_conflict)
    )


_APPEND_VERSIONS = _insert_versions(["valid_to"])
_REPLACE_VERSIONS = _insert_versions([c for c in _VERSION_COLUMNS if c not in _VERSION_KEY])
_UPSERT_DEALS = text(
    f"INSERT INTO forecast.deals ({', '.join(_ROW_COLUMNS)}, updated_at) "
    f"SELECT {', '.join(_ROW_COLUMNS)}, now() FROM ({_rows_of('forecast.deals')}) AS latest "
    "ON CONFLICT (deal_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _ROW_COLUMNS if c != "deal_id")
    + ", updated_at = now()"
)


async def write_versions(
    conn: AsyncConnection, *, appended: Sequence[Version], rebuilt: Sequence[Version] = ()
) -> None:
    """Store versions, then refresh the current rows: one statement each, whatever the
    number of deals. Each (deal, version) appears at most once, as one statement's ON
    CONFLICT may touch a row only once.

    `appended` are new versions and the current ones they close (only `valid_to` of a
    stored one changes); `rebuilt` are the tails of rebuilt histories, from the first
    version a late change alters, overwriting the stored versions from there. That needs no
    DELETE: a deal has one version per stored change, and changes are never removed, so a
    rebuilt history is at least as long as the stored one."""
    latest: dict[str, dict[str, Any]] = {}
    for statement, versions in ((_APPEND_VERSIONS, appended), (_REPLACE_VERSIONS, rebuilt)):
        if versions:
            rows = [_json_row(v) for v in versions]
            await conn.execute(statement, {"rows": _json(rows)})
            latest.update(
                (v.state.deal_id, row)
                for v, row in zip(versions, rows, strict=True)
                if v.valid_to is None
            )
    if latest:
        await conn.execute(_UPSERT_DEALS, {"rows": _json(list(latest.values()))})


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


async def current_pipelines(
    conn: AsyncConnection, *, deal_ids: Iterable[str]
) -> dict[str, tuple[OrderKey, str | None]]:
    """The current pipeline of each stored deal, with the key of its current version: the
    pipeline of every change of the deal newer than that (the stage check)."""
    rows = await conn.execute(
        text(
            "SELECT deal_id, pipeline, valid_from, sequence, event_source, event_id "
            "FROM forecast.deals WHERE deal_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": list(deal_ids)},
    )
    return {
        r.deal_id: (OrderKey(r.valid_from, int(r.sequence), r.event_source, r.event_id), r.pipeline)
        for r in rows
    }


async def pipeline_moves(
    conn: AsyncConnection, *, deal_ids: Iterable[str]
) -> dict[str, list[tuple[OrderKey, str | None]]]:
    """Each stored change of these deals that sets a pipeline: its key and the pipeline (the
    stage check of a change older than its deal's current version)."""
    rows = await conn.execute(
        text(
            "SELECT deal_id, source, event_id, event_time, sequence, "
            "fields ->> 'pipeline' AS pipeline FROM forecast.deal_changes "
            "WHERE deal_id = ANY(CAST(:ids AS text[])) AND fields ? 'pipeline'"
        ),
        {"ids": list(deal_ids)},
    )
    out: dict[str, list[tuple[OrderKey, str | None]]] = {}
    for r in rows:
        key = OrderKey(r.event_time, int(r.sequence), r.source, r.event_id)
        out.setdefault(r.deal_id, []).append((key, r.pipeline))
    return out


async def stored_keys(conn: AsyncConnection, *, changes: Sequence[Change]) -> set[tuple[str, str]]:
    """The (source, event id) of those of `changes` stored already: redeliveries."""
    rows = await conn.execute(
        text(
            "SELECT c.source, c.event_id FROM forecast.deal_changes AS c "
            "JOIN unnest(CAST(:sources AS text[]), CAST(:ids AS text[])) AS k(source, event_id) "
            "USING (source, event_id)"
        ),
        {
            "sources": [c.key.source for c in changes],
            "ids": [c.key.event_id for c in changes],
        },
    )
    return {(r.source, r.event_id) for r in rows}
