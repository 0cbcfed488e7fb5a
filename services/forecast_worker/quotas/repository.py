"""All SQL of the quotas. Functions take a connection or session, then keyword arguments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.forecast_worker.quotas.models import Quota, QuotaChange

# The ordering rule (shared/ordering.py): is the incoming event newer than the stored one?
_NEWER = (
    "(EXCLUDED.event_time, EXCLUDED.sequence, EXCLUDED.event_source, EXCLUDED.event_id)"
    " > (q.event_time, q.sequence, q.event_source, q.event_id)"
)


async def insert_quota_changes(conn: AsyncConnection, *, rows: Sequence[dict[str, Any]]) -> None:
    """Keep every event's quota, once per event identity, in one statement."""
    if rows:
        await conn.execute(pg_insert(QuotaChange).values(list(rows)).on_conflict_do_nothing())


def quotas_as_of(as_of: datetime) -> Any:
    """Each quota as its latest event up to `as_of` set it (by the ordering rule), as a
    relation with `Quota`'s columns: what the quotas table said at that instant."""
    return (
        select(QuotaChange)
        .where(QuotaChange.event_time <= as_of)
        .ext(distinct_on(QuotaChange.quota_id))
        .order_by(
            QuotaChange.quota_id,
            QuotaChange.event_time.desc(),
            QuotaChange.sequence.desc(),
            QuotaChange.event_source.desc(),
            QuotaChange.event_id.desc(),
        )
        .subquery("quotas_then")
    )


async def upsert_quotas(conn: AsyncConnection, *, rows: Sequence[dict[str, Any]]) -> int:
    """Store each quota unless a newer event wrote it; returns how many rows changed.

    Rows go one statement each, oldest first, so two events for one quota in a batch
    cannot meet in one INSERT (which Postgres refuses) and the newer still wins."""
    written = 0
    ordered = sorted(
        rows, key=lambda r: (r["event_time"], r["sequence"], r["event_source"], r["event_id"])
    )
    for row in ordered:
        result = await conn.execute(
            text(
                f"""
                INSERT INTO forecast.quotas AS q (quota_id, rep_id, team_id, period_start,
                    period_end, amount, currency, event_time, sequence, event_source, event_id)
                VALUES (:quota_id, :rep_id, :team_id, :period_start, :period_end, :amount,
                    :currency, :event_time, :sequence, :event_source, :event_id)
                ON CONFLICT (quota_id) DO UPDATE SET
                    rep_id = EXCLUDED.rep_id, team_id = EXCLUDED.team_id,
                    period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                    amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                    event_time = EXCLUDED.event_time, sequence = EXCLUDED.sequence,
                    event_source = EXCLUDED.event_source, event_id = EXCLUDED.event_id
                WHERE {_NEWER}
                """
            ),
            row,
        )
        written += result.rowcount
    return written


@dataclass(frozen=True)
class QuotaFilter:
    period_start: date | None = None
    period_end: date | None = None
    rep_id: str | None = None
    team_id: str | None = None


async def list_quotas(session: AsyncSession, *, flt: QuotaFilter) -> list[Quota]:
    """Quotas whose period overlaps [period_start, period_end] (either bound optional)."""
    query = select(Quota).order_by(Quota.period_start, Quota.quota_id)
    if flt.period_start is not None:
        query = query.where(Quota.period_end >= flt.period_start)
    if flt.period_end is not None:
        query = query.where(Quota.period_start <= flt.period_end)
    if flt.rep_id is not None:
        query = query.where(Quota.rep_id == flt.rep_id)
    if flt.team_id is not None:
        query = query.where(Quota.team_id == flt.team_id)
    return list((await session.scalars(query)).all())


async def quota_totals(
    conn: AsyncConnection | AsyncSession, *, by: Literal["rep", "team"], start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    """{(rep or team id, currency): total} of the quotas whose period lies within
    [start, end]: a roll-up's quota for a period is the sum of the quotas set inside it."""
    owner = Quota.rep_id if by == "rep" else Quota.team_id
    rows = await conn.execute(
        select(owner.label("owner"), Quota.currency, func.sum(Quota.amount).label("total"))
        .where(owner.is_not(None), Quota.period_start >= start, Quota.period_end <= end)
        .group_by(owner, Quota.currency)
    )
    return {(r.owner, r.currency): r.total for r in rows}
