"""What the comp consumer writes: deal changes (deduped by event identity), the reference
facts (newest CRM time wins), and the reps whose ledger the batch may have moved."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Table, and_, func, literal_column, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.models import (
    DealChangeRow,
    DealRepRow,
    DirtyRepRow,
    PaymentRow,
    QuotaRow,
    RepTeamRow,
    TeamManagerRow,
)
from shared.db import table_of

CHANGES = table_of(DealChangeRow)
DEAL_REPS = table_of(DealRepRow)
DIRTY = table_of(DirtyRepRow)
REP_TEAMS = table_of(RepTeamRow)
TEAM_MANAGERS = table_of(TeamManagerRow)
QUOTAS = table_of(QuotaRow)
PAYMENTS = table_of(PaymentRow)
RECALC_CHANNEL = "salesops_comp_recalc"
"""The notification channel a commit that marked reps dirty signals (`recalc/wakeup.py`)."""


async def insert_changes(conn: AsyncConnection, *, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Store new changes; the deal ids of those that were new (a redelivery is not)."""
    if not rows:
        return []
    stmt = (
        insert(CHANGES)
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(CHANGES.c.deal_id)
    )
    # Rows as parameter sets, which SQLAlchemy pages: one VALUES list of a large batch
    # (SALESOPS_CONSUMER_MAX_RECORDS) would pass the 32,767 bind parameters a statement takes.
    return list((await conn.execute(stmt, list(rows))).scalars())


async def add_deal_reps(conn: AsyncConnection, *, pairs: Collection[tuple[str, str]]) -> None:
    if pairs:
        rows = [{"deal_id": d, "rep_id": r} for d, r in sorted(pairs)]
        await conn.execute(insert(DEAL_REPS).on_conflict_do_nothing(), rows)


async def stage_changes(
    conn: AsyncConnection, *, deal_ids: Collection[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The stored changes of these deals that set a stage or a status (deal id, fields)."""
    if not deal_ids:
        return []
    stmt = select(CHANGES.c.deal_id, CHANGES.c.fields).where(
        CHANGES.c.deal_id.in_(sorted(deal_ids)),
        or_(CHANGES.c.fields.has_key("stage"), CHANGES.c.fields.has_key("status")),
    )
    return [(r.deal_id, r.fields) for r in await conn.execute(stmt)]


async def reps_of_deals(conn: AsyncConnection, *, deal_ids: Collection[str]) -> set[str]:
    if not deal_ids:
        return set()
    stmt = select(DEAL_REPS.c.rep_id).where(DEAL_REPS.c.deal_id.in_(sorted(deal_ids)))
    return set((await conn.execute(stmt)).scalars())


async def mark_dirty(conn: AsyncConnection, *, rep_ids: Collection[str]) -> None:
    """Mark the reps, and every manager they ever reported to (whose roll-up credit the
    same change can move), for recalculation."""
    if not rep_ids:
        return
    managers = (
        select(TEAM_MANAGERS.c.manager_id)
        .join(REP_TEAMS, REP_TEAMS.c.team_id == TEAM_MANAGERS.c.team_id)
        .where(REP_TEAMS.c.rep_id.in_(sorted(rep_ids)), TEAM_MANAGERS.c.manager_id.is_not(None))
    )
    everyone = set(rep_ids) | set((await conn.execute(managers)).scalars())
    rows = [{"rep_id": r} for r in sorted(everyone)]
    # DO UPDATE, not DO NOTHING: every mark writes a new row version (a new xmin), which is
    # how a recalculation that read the rep before this mark knows not to clear it. The
    # recalculation locks no dirty row while it works, so this never waits behind a round.
    stmt = insert(DIRTY)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["rep_id"], set_={"since": DIRTY.c.since}),
        rows,
    )
    # Delivered when (and only if) this transaction commits: the recalculation wakes up
    # as soon as the marks are visible instead of at its next poll.
    await conn.execute(select(func.pg_notify(RECALC_CHANNEL, "")))


async def upsert_newest(
    conn: AsyncConnection, *, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> int:
    """Insert or replace by `keys` when the row's event is newer (CRM time, then identity):
    a late or repeated reference event changes nothing. Returns how many rows changed."""
    if not rows:
        return 0
    stmt = insert(table)
    excluded = stmt.excluded
    newer = or_(
        excluded.event_time > table.c.event_time,
        and_(
            excluded.event_time == table.c.event_time,
            tuple_(excluded.event_source, excluded.event_id)
            > tuple_(table.c.event_source, table.c.event_id),
        ),
    )
    columns = {c.name: excluded[c.name] for c in table.c if c.name not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=columns, where=newer)
    return len((await conn.execute(stmt.returning(literal_column("1")), list(rows))).all())
