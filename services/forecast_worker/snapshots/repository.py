"""Snapshots' SQL: freeze the roll-up at an instant, find the slots already taken, read back.

Taking a snapshot is one transaction: the header is inserted with ON CONFLICT DO NOTHING
(the unique slot index makes a scheduled or backfilled slot exist once, whichever replica
or restart gets there first), and its rows computed and inserted only when the header was
new. The scheduler also reads here how far the forecast consumer has applied its topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from sqlalchemy import insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.dispatch import GROUP_ID
from services.forecast_worker.models import CONSUMER_TABLES
from services.forecast_worker.rollup.compute import compute_rollup
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import RollupRow
from services.forecast_worker.snapshots.models import Snapshot, SnapshotRow
from shared.consumer_store import load_offsets
from shared.periods import Period

GROUPINGS: tuple[GroupBy, ...] = get_args(GroupBy)
_ROW_COLUMNS = tuple(RollupRow.model_fields)


@dataclass(frozen=True)
class Frozen:
    """A snapshot read back: its header and its rows per grouping, in the roll-up's order."""

    header: Snapshot
    rows: dict[str, list[RollupRow]]


async def take_snapshot(
    session: AsyncSession,
    *,
    stages: StageTable,
    period: Period,
    as_of: datetime,
    kind: str,
    taken_by: str,
) -> Snapshot | None:
    """Freeze the roll-up of `period` at `as_of` for every grouping, in the caller's
    transaction; None when that slot (period, instant, kind) was already taken. The header
    goes first, so a slot another replica or request has taken costs one insert, not four
    roll-ups."""
    header = (
        await session.scalars(
            pg_insert(Snapshot)
            .values(
                period=period.label,
                period_start=period.start,
                period_end=period.end,
                as_of=as_of,
                kind=kind,
                taken_by=taken_by,
            )
            .on_conflict_do_nothing()
            .returning(Snapshot)
        )
    ).one_or_none()
    if header is None:
        return None
    values = [
        {"snapshot_id": header.id, "group_by": group_by, "position": n, **row.model_dump()}
        for group_by in GROUPINGS
        for n, row in enumerate(
            await compute_rollup(
                session, stages=stages, period=period, group_by=group_by, as_of=as_of
            )
        )
    ]
    if values:
        await session.execute(insert(SnapshotRow), values)
    return header


async def taken_instants(
    session: AsyncSession, *, periods: Sequence[Period], since: datetime, until: datetime
) -> set[tuple[Any, Any, datetime, str]]:
    """The (period start, period end, instant, kind) of the snapshots of `periods` whose
    instant lies in [since, until]: the slots a scheduler or a backfill need not take."""
    if not periods:
        return set()
    query = select(Snapshot.period_start, Snapshot.period_end, Snapshot.as_of, Snapshot.kind).where(
        tuple_(Snapshot.period_start, Snapshot.period_end).in_([(p.start, p.end) for p in periods]),
        Snapshot.as_of >= since,
        Snapshot.as_of <= until,
    )
    return {(r.period_start, r.period_end, r.as_of, r.kind) for r in await session.execute(query)}


async def consumer_positions(
    session: AsyncSession, *, partitions: Iterable[tuple[str, int]], incarnation: str | None
) -> dict[tuple[str, int], int]:
    """The forecast consumer's stored next offset per (topic, partition) of `partitions`,
    of those it stored in the broker life `incarnation`: how far the projection has applied
    each. An offset of an earlier life counts for nothing (the consumer reads that
    partition again from the start)."""
    stored = await load_offsets(
        await session.connection(),
        tables=CONSUMER_TABLES,
        group_id=GROUP_ID,
        partitions=partitions,
    )
    return {
        tp: offset.next_offset for tp, offset in stored.items() if offset.incarnation == incarnation
    }


async def list_snapshots(
    session: AsyncSession,
    *,
    period: Period,
    group_by: GroupBy | None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[Frozen]:
    """The period's snapshots in order of instant (then id), with their rows of `group_by`
    (every grouping when None): two statements, the headers then their rows. `after` and
    `limit` page them: the first `limit` after that (instant, id)."""
    query = select(Snapshot).where(
        Snapshot.period_start == period.start, Snapshot.period_end == period.end
    )
    if since is not None:
        query = query.where(Snapshot.as_of >= since)
    if until is not None:
        query = query.where(Snapshot.as_of <= until)
    if kind is not None:
        query = query.where(Snapshot.kind == kind)
    if after is not None:
        query = query.where(tuple_(Snapshot.as_of, Snapshot.id) > after)
    query = query.order_by(Snapshot.as_of, Snapshot.id).limit(limit)
    headers = (await session.scalars(query)).all()
    return await _with_rows(session, headers, group_by)


async def get_snapshot(
    session: AsyncSession, *, snapshot_id: int, group_by: GroupBy | None
) -> Frozen | None:
    header = await session.get(Snapshot, snapshot_id)
    if header is None:
        return None
    (frozen,) = await _with_rows(session, [header], group_by)
    return frozen


async def _with_rows(
    session: AsyncSession, headers: Sequence[Snapshot], group_by: GroupBy | None
) -> list[Frozen]:
    rows_table = SnapshotRow.__table__
    table = rows_table.c
    query = select(rows_table).where(table.snapshot_id.in_([h.id for h in headers]))
    if group_by is not None:
        query = query.where(table.group_by == group_by)
    rows: dict[int, dict[str, list[RollupRow]]] = {h.id: {} for h in headers}
    if headers:
        ordered = query.order_by(table.snapshot_id, table.group_by, table.position)
        for r in (await session.execute(ordered)).mappings():
            row = RollupRow.model_validate({c: r[c] for c in _ROW_COLUMNS})
            rows[r["snapshot_id"]].setdefault(r["group_by"], []).append(row)
    wanted = GROUPINGS if group_by is None else (group_by,)
    return [Frozen(header=h, rows={g: rows[h.id].get(g, []) for g in wanted}) for h in headers]
