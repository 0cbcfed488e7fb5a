"""Plan versions, assignments and FX rates: their SQL. Every write marks the reps it can
move dirty, so the recalculation posts what the change means for their ledgers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.intake.repository import mark_dirty
from services.comp_engine.models import AssignmentRow, FxRateRow, PlanVersionRow
from shared.db import table_of

PLANS = table_of(PlanVersionRow)
ASSIGNMENTS = table_of(AssignmentRow)
FX = table_of(FxRateRow)


async def add_version(
    db: AsyncSession, *, plan_id: str, effective_from: date, document: dict[str, Any], author: str
) -> PlanVersionRow:
    """The plan's next version; versions are numbered under a lock on the plan id."""
    await db.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('comp.plan:' || :id))"), {"id": plan_id}
    )
    latest = await db.scalar(select(func.max(PLANS.c.version)).where(PLANS.c.plan_id == plan_id))
    row = PlanVersionRow(
        plan_id=plan_id,
        version=(latest or 0) + 1,
        effective_from=effective_from,
        document=document,
        created_by=author,
    )
    db.add(row)
    await db.flush()
    reps = await db.scalars(select(ASSIGNMENTS.c.rep_id).where(ASSIGNMENTS.c.plan_id == plan_id))
    await mark_dirty(await db.connection(), rep_ids=set(reps))
    return row


async def versions(db: AsyncSession, *, plan_id: str) -> Sequence[PlanVersionRow]:
    stmt = select(PlanVersionRow).where(PlanVersionRow.plan_id == plan_id)
    return (await db.scalars(stmt.order_by(PlanVersionRow.version))).all()


async def overlapping(
    db: AsyncSession, *, rep_id: str, start: date, end: date | None
) -> AssignmentRow | None:
    """The rep's assignment overlapping [start, end), after taking the rep's lock, so two
    concurrent requests cannot both find none."""
    await db.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('comp.rep:' || :id))"), {"id": rep_id}
    )
    row = AssignmentRow
    clash = and_(row.rep_id == rep_id, or_(row.end.is_(None), row.end > start))
    if end is not None:
        clash = and_(clash, row.start < end)
    return (await db.scalars(select(row).where(clash).order_by(row.start).limit(1))).first()


async def add_assignment(db: AsyncSession, *, values: dict[str, Any], author: str) -> AssignmentRow:
    row = AssignmentRow(**values, created_by=author)
    db.add(row)
    await db.flush()
    await mark_dirty(await db.connection(), rep_ids={row.rep_id})
    return row


async def assignments(
    db: AsyncSession,
    *,
    rep_ids: Collection[str] | None,
    after: tuple[str, date, int] | None,
    limit: int,
) -> Sequence[AssignmentRow]:
    """Assignments of `rep_ids` (`None` for every rep's), by rep, start, then id (unique,
    so a page ends between two rows, never inside a tie)."""
    order = (AssignmentRow.rep_id, AssignmentRow.start, AssignmentRow.id)
    stmt = select(AssignmentRow).order_by(*order).limit(limit)
    if rep_ids is not None:
        stmt = stmt.where(AssignmentRow.rep_id.in_(sorted(rep_ids)))
    if after is not None:
        stmt = stmt.where(tuple_(*order) > tuple_(*after))
    return (await db.scalars(stmt)).all()


async def put_rates(db: AsyncSession, *, rates: Sequence[dict[str, Any]]) -> int:
    stmt = insert(FX)
    stmt = stmt.on_conflict_do_update(
        index_elements=["base", "quote", "day"], set_={"rate": stmt.excluded.rate}
    )
    # Parameter sets, which SQLAlchemy pages: the 10,000 rates a body may hold as one VALUES
    # list would pass the 32,767 bind parameters a statement takes.
    await db.execute(stmt, list(rates))
    reps = await db.scalars(select(ASSIGNMENTS.c.rep_id).distinct())
    await mark_dirty(await db.connection(), rep_ids=set(reps))
    return len(rates)
