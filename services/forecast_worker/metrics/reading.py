"""Reading the metrics of a range: every total read from one snapshot of the database in
which the summary is caught up, on two connections at once.

The totals come from several statements: the outcomes and open counts read the deals, the
stage totals (the longest) and the created pipeline read the summary. Each statement on its
own would read what is committed when it starts, so a deal committed between two of them
would be counted by one and not the other (won once, entered in no stage). So the request's
connection begins a REPEATABLE READ transaction, exports its snapshot
(`pg_export_snapshot`) and catches the summary up inside it, then reads the summary's
totals; a second connection adopts the snapshot (`SET TRANSACTION SNAPSHOT`) and reads the
deals' totals meanwhile. Both see the same deals, and the summary is the summary of those
deals: the catch-up ran on them. Catching up before the snapshot instead, and committing,
would leave a window in which a deal committed after the catch-up is in the snapshot's
deals but not in its summary.

Catch-ups take turns under an advisory lock; this one takes it after its snapshot, so a
catch-up that commits in between makes this one's writes conflict (SQLSTATE 40001), and
the read starts again with a new snapshot, a few times at most. The lock is a
transaction's, held until the read ends: metrics reads (and the summariser's catch-ups)
take turns for the 1-2 s a year's read takes at 1 M deals, which on 2 cores costs little
(each read keeps both busy) but would queue them on a larger server; reading the few
deals changed since the mark from their versions instead of writing their summary would
lift that, and is not done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.metrics import repository
from services.forecast_worker.metrics.figures import OutcomeTotals
from services.forecast_worker.metrics.report import GroupTotals, rows_from_totals
from services.forecast_worker.metrics.repository import GroupBy, GroupCount, Key
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.summary import repository as summary
from shared.db import export_snapshot as export
from shared.db import use_snapshot
from shared.db_errors import sqlstate

_REPEATABLE = {"isolation_level": "REPEATABLE READ"}
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_WAIT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_CONCURRENT_UPDATE = "40001"
_ATTEMPTS = 5
"""Snapshots tried, each lost only to a catch-up that committed in the moment between the
snapshot and the lock. The last waits for the lock inside its transaction; should it lose
too, its serialization failure reaches the API, which answers 503 (transient)."""
_WORK_MEM = text("SET LOCAL work_mem = '64MB'")
"""For the rest of a metrics read's transaction: the stage totals hash a year's ~1.5 M
visits into their groups, each with an array of its lengths (~13 MB for a year by team),
which the default 4 MB spills to disk in batches (by rep, 0.2-0.4 s of a 1.5-2 s
statement at 1 M deals: benchmarks/RESULTS.md, "Issue 8 metrics for a year, third
pass"). Per sort or hash of the read, in each of its processes."""


async def export_snapshot(session: AsyncSession) -> str:
    """Begin a REPEATABLE READ transaction on `session` (which must have none open) and
    export its snapshot, valid while that transaction lasts; its sorts and hashes get
    `_WORK_MEM`."""
    snapshot = await export(await session.connection(execution_options=_REPEATABLE))
    await session.execute(_WORK_MEM)
    return snapshot


async def adopt_snapshot(session: AsyncSession, snapshot: str) -> None:
    """Begin a REPEATABLE READ transaction on `session` that sees what `snapshot` saw, its
    sorts and hashes with `_WORK_MEM`."""
    await use_snapshot(await session.connection(execution_options=_REPEATABLE), snapshot)
    await session.execute(_WORK_MEM)


async def caught_up_snapshot(db: AsyncSession) -> str:
    """Begin `db`'s REPEATABLE READ transaction, with the summary caught up inside it, and
    export its snapshot. The transactions in progress are listed before the snapshot is
    taken (`summary.repository.catch_up` explains why the mark needs that order)."""
    attempt = 0
    while True:
        attempt += 1
        last = attempt >= _ATTEMPTS
        listed = await summary.running(db)
        await db.commit()
        snapshot = await export_snapshot(db)
        if last:
            await db.execute(_WAIT_LOCK, {"key": summary.LOCK})
        elif not (await db.execute(_TRY_LOCK, {"key": summary.LOCK})).scalar_one():
            await db.rollback()
            await db.execute(_WAIT_LOCK, {"key": summary.LOCK})
            await db.commit()
            continue
        try:
            await summary.catch_up(db, listed=listed)
        except DBAPIError as exc:
            if last or sqlstate(exc) != _CONCURRENT_UPDATE:
                raise
            await db.rollback()
            continue
        return snapshot


async def metrics_rows(
    db: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    *,
    configured: Sequence[str],
    start: date,
    end: date,
    group_by: GroupBy | None,
) -> list[MetricsRow]:
    """Totals per group from PostgreSQL (a year is ~300 k closed deals, too many rows to
    ship), the figures from the totals in `figures`, all read from one snapshot in which
    the summary is caught up (so a deal change applied before the request is in the
    answer). `configured` is the stage order of the default pipeline; empty, the stages as
    first seen."""
    snapshot = await caught_up_snapshot(db)

    async def deal_totals() -> tuple[dict[Key, OutcomeTotals], list[GroupCount]]:
        async with sessions() as other:
            await adopt_snapshot(other, snapshot)
            outcomes = await repository.outcome_totals(
                other, start=start, end=end, group_by=group_by
            )
            today = datetime.now(UTC).date()
            return outcomes, await repository.open_counts(other, today=today, group_by=group_by)

    async with asyncio.TaskGroup() as running:
        deals = running.create_task(deal_totals())
        order = list(configured) or await repository.first_seen_stages(db, start=start, end=end)
        stages = await repository.stage_totals(
            db, start=start, end=end, group_by=group_by, order=order
        )
        created = await repository.created_pipeline(db, start=start, end=end, group_by=group_by)
    await db.commit()
    outcomes, opened = deals.result()
    totals = {key: GroupTotals(outcome, stages.get(key, {})) for key, outcome in outcomes.items()}
    return rows_from_totals(totals, order, opened, created)
