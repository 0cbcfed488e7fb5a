"""Reading the comp engine's dead letters: the calculations waiting for data (`waiting`),
in id order, so an operator pages through them while new ones arrive."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.models import WaitingRow


async def letters(
    db: AsyncSession, *, rep_id: str | None, reason: str | None, after: int | None, limit: int
) -> Sequence[WaitingRow]:
    """`reason` matches any part of the reason, without regard to case (`XAB->USD`, `FX`)."""
    stmt = select(WaitingRow).order_by(WaitingRow.id).limit(limit)
    if rep_id is not None:
        stmt = stmt.where(WaitingRow.rep_id == rep_id)
    if reason is not None:
        stmt = stmt.where(WaitingRow.reason.icontains(reason, autoescape=True))
    if after is not None:
        stmt = stmt.where(WaitingRow.id > after)
    return (await db.scalars(stmt)).all()


async def letter(db: AsyncSession, *, letter_id: int) -> WaitingRow | None:
    return await db.scalar(select(WaitingRow).where(WaitingRow.id == letter_id))
