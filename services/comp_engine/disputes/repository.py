"""Reading disputes: newest first by id, so an operator paging through them while new ones
are opened neither skips nor repeats one (a new dispute has a higher id than any page
already read), and the steps of a whole page in one query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.models import DisputeRow, DisputeStepRow


async def disputes(
    db: AsyncSession,
    *,
    rep_ids: Collection[str] | None,
    status: str | None,
    before: int | None,
    limit: int,
) -> Sequence[DisputeRow]:
    """Disputes of `rep_ids` (`None` for every rep's), with ids below `before`."""
    stmt = select(DisputeRow).order_by(DisputeRow.id.desc()).limit(limit)
    if rep_ids is not None:
        stmt = stmt.where(DisputeRow.rep_id.in_(sorted(rep_ids)))
    if status is not None:
        stmt = stmt.where(DisputeRow.status == status)
    if before is not None:
        stmt = stmt.where(DisputeRow.id < before)
    return (await db.scalars(stmt)).all()


async def steps_of(
    db: AsyncSession, *, dispute_ids: Collection[int]
) -> dict[int, list[DisputeStepRow]]:
    """The steps of each of `dispute_ids` that has any, oldest first."""
    found: dict[int, list[DisputeStepRow]] = defaultdict(list)
    if not dispute_ids:
        return found
    stmt = (
        select(DisputeStepRow)
        .where(DisputeStepRow.dispute_id.in_(sorted(dispute_ids)))
        .order_by(DisputeStepRow.dispute_id, DisputeStepRow.id)
    )
    for step in await db.scalars(stmt):
        found[step.dispute_id].append(step)
    return found
