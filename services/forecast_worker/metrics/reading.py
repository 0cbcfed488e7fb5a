"""Reading the metrics of a range: the summary caught up, then every total read from one
snapshot of the database, on two connections at once.

The totals come from several statements (outcomes, open counts and created pipeline on the
request's connection, the stage totals, the longest, on a second one). Each statement on
its own would read what is committed when it starts, so a deal committed between two of
them would be counted by one and not the other (won once, entered in no stage). The first
connection's transaction therefore runs at REPEATABLE READ and exports its snapshot
(`pg_export_snapshot`), taken after the catch-up is committed, and the second connection's
transaction adopts it (`SET TRANSACTION SNAPSHOT`): both see the same committed data,
including the summary the catch-up brought up to date."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.metrics import repository
from services.forecast_worker.metrics.figures import StageTotals
from services.forecast_worker.metrics.report import GroupTotals, rows_from_totals
from services.forecast_worker.metrics.repository import GroupBy, Key
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.summary.repository import catch_up

_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
"""What `pg_export_snapshot` returns, checked before it is written into a statement
(`SET TRANSACTION SNAPSHOT` takes no parameter)."""
_REPEATABLE = {"isolation_level": "REPEATABLE READ"}
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
    await session.connection(execution_options=_REPEATABLE)
    snapshot = (await session.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    await session.execute(_WORK_MEM)
    return str(snapshot)


async def adopt_snapshot(session: AsyncSession, snapshot: str) -> None:
    """Begin a REPEATABLE READ transaction on `session` that sees what `snapshot` saw, its
    sorts and hashes with `_WORK_MEM`."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    connection = await session.connection(execution_options=_REPEATABLE)
    await connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    await session.execute(_WORK_MEM)


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
    ship), the figures from the totals in `figures`. The summary is brought up to date
    first (and committed), so a deal change applied before the request is in the answer;
    then every total is read from one snapshot taken after it. `configured` is the stage
    order of the default pipeline; empty, the stages as first seen."""
    await catch_up(db)
    await db.commit()
    snapshot = await export_snapshot(db)
    order = list(configured) or await repository.first_seen_stages(db, start=start, end=end)

    async def stage_totals() -> dict[Key, dict[str, StageTotals]]:
        async with sessions() as other:
            await adopt_snapshot(other, snapshot)
            return await repository.stage_totals(
                other, start=start, end=end, group_by=group_by, order=order
            )

    async with asyncio.TaskGroup() as running:
        stages = running.create_task(stage_totals())
        outcomes = await repository.outcome_totals(db, start=start, end=end, group_by=group_by)
        opened = await repository.open_counts(db, today=datetime.now(UTC).date(), group_by=group_by)
        created = await repository.created_pipeline(db, start=start, end=end, group_by=group_by)
    totals = {
        key: GroupTotals(outcome, stages.result().get(key, {})) for key, outcome in outcomes.items()
    }
    return rows_from_totals(totals, order, opened, created)
