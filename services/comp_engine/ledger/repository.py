"""Reading the ledger: in line-id order, so a BI tool pulls it incrementally by the last id
it has (lines are never changed, so a line once read stays read, and writers take turns,
`turn.py`, so a line committed later always has a higher id than any already seen)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.models import LedgerLineRow, WaitingRow


async def lines(
    db: AsyncSession,
    *,
    rep_ids: Collection[str] | None,
    rep_id: str | None,
    period: str | None,
    after: int | None,
    limit: int,
) -> Sequence[LedgerLineRow]:
    stmt = select(LedgerLineRow).order_by(LedgerLineRow.id).limit(limit)
    if rep_ids is not None:
        stmt = stmt.where(LedgerLineRow.rep_id.in_(sorted(rep_ids)))
    if rep_id is not None:
        stmt = stmt.where(LedgerLineRow.rep_id == rep_id)
    if period is not None:
        stmt = stmt.where(LedgerLineRow.posted_period == period)
    if after is not None:
        stmt = stmt.where(LedgerLineRow.id > after)
    return (await db.scalars(stmt)).all()


async def waiting(db: AsyncSession, *, rep_ids: Collection[str] | None) -> Sequence[WaitingRow]:
    stmt = select(WaitingRow).order_by(WaitingRow.since, WaitingRow.rep_id, WaitingRow.subject)
    if rep_ids is not None:
        stmt = stmt.where(WaitingRow.rep_id.in_(sorted(rep_ids)))
    return (await db.scalars(stmt)).all()
