"""A stored simulation's workers read in the caller's snapshot (`simulate/stored.py`): a
change committed after it is not seen, a worker reads the shared inputs once a simulation,
and its chunks share its event loop and connection."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from sqlalchemy import text

from services.comp_engine.deals.history import StageNames
from services.comp_engine.simulate import stored
from services.comp_engine.simulate.workers import Workers
from shared.db import create_engine, export_snapshot, use_snapshot
from tests.support.comp import plan

pytestmark = pytest.mark.integration

DIRTY = text("INSERT INTO comp.dirty_reps (rep_id) VALUES (:rep)")
MARKED = text("SELECT count(*) FROM comp.dirty_reps WHERE rep_id = :rep")


async def test_a_worker_reads_the_callers_snapshot_and_its_shared_inputs_once(
    database_url: str,
) -> None:
    rep = f"snap-{uuid.uuid4().hex[:8]}"
    engine = create_engine(database_url, application_name="salesops-comp-test")
    try:
        async with engine.connect() as caller:
            await caller.execution_options(isolation_level="REPEATABLE READ")
            assert await caller.scalar(MARKED, {"rep": rep}) == 0
            snapshot = stored._Snapshot(await export_snapshot(caller), "run-1")
            async with engine.begin() as other:
                await other.execute(DIRTY, {"rep": rep})
            async with engine.connect() as worker:
                await worker.execution_options(isolation_level="REPEATABLE READ")
                await use_snapshot(worker, snapshot.id)
                assert await worker.scalar(MARKED, {"rep": rep}) == 0
                first = await stored._shared_of(worker, snapshot)
                assert await stored._shared_of(worker, snapshot) is first
            async with engine.connect() as later:
                assert await later.scalar(MARKED, {"rep": rep}) == 1
                renewed = await stored._shared_of(later, stored._Snapshot(snapshot.id, "run-2"))
                assert renewed is not first
                assert renewed == first
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM comp.dirty_reps WHERE rep_id = :rep"), {"rep": rep}
            )
        await engine.dispose()


async def test_a_snapshot_id_is_checked() -> None:
    with pytest.raises(ValueError, match="not a snapshot id"):
        await use_snapshot(None, "1'; DROP TABLE x; --")  # type: ignore[arg-type]


WORKER_BACKENDS = text(
    "SELECT pid FROM pg_stat_activity"
    " WHERE application_name = 'salesops-comp-simulate' AND datname = current_database()"
)


async def test_a_workers_chunks_share_its_connection(
    database_url: str,
) -> None:
    job = stored._Job(
        plan("draft"),
        StageNames.of(["won"], ["lost"]),
        date(2027, 1, 1),
        date(2026, 1, 1),
        date(2027, 1, 1),
        True,
    )
    workers = Workers(1)
    engine = create_engine(database_url, application_name="salesops-comp-test")

    async def backends() -> set[int]:
        async with engine.connect() as conn:
            return set((await conn.execute(WORKER_BACKENDS)).scalars())

    try:
        async with engine.connect() as caller:
            await caller.execution_options(isolation_level="REPEATABLE READ")
            snapshot = stored._Snapshot(await export_snapshot(caller), "run")
            loop = asyncio.get_running_loop()
            found, seen = [], []
            for _ in range(3):
                found.append(
                    await loop.run_in_executor(
                        workers.executor, stored._worker, database_url, ["nobody"], job, snapshot
                    )
                )
                seen.append(await backends())
        assert found == [stored.Stored()] * 3
        assert len(seen[0]) == 1
        assert seen == [seen[0]] * 3
    finally:
        workers.close()
        await engine.dispose()
