"""Reading the ledger: in line-id order, so a BI tool pulls it incrementally by the last id
it has (lines are never changed, so a line once read stays read, and writers take turns,
`turn.py`, so a line committed later always has a higher id than any already seen)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
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


async def waiting(
    db: AsyncSession,
    *,
    rep_ids: Collection[str] | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[WaitingRow]:
    """Waits oldest first, then by id: a wait that goes on keeps its `since` and id, and a
    new one starts now, so a page once read is not read again nor skipped."""
    order = (WaitingRow.since, WaitingRow.id)
    stmt = select(WaitingRow).order_by(*order).limit(limit)
    if rep_ids is not None:
        stmt = stmt.where(WaitingRow.rep_id.in_(sorted(rep_ids)))
    if after is not None:
        stmt = stmt.where(tuple_(*order) > tuple_(*after))
    return (await db.scalars(stmt)).all()
