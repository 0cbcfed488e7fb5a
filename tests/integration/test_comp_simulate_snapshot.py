"""A stored simulation's workers read in the caller's snapshot (`simulate/stored.py`): a
change committed after it is not seen, and a worker reads the shared inputs once a
simulation."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from services.comp_engine.recalc import repository
from services.comp_engine.simulate import stored
from shared.db import create_engine

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
            snapshot = stored._Snapshot(await repository.export_snapshot(caller), "run-1")
            async with engine.begin() as other:
                await other.execute(DIRTY, {"rep": rep})
            async with engine.connect() as worker:
                await worker.execution_options(isolation_level="REPEATABLE READ")
                await repository.use_snapshot(worker, snapshot.id)
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
        await repository.use_snapshot(None, "1'; DROP TABLE x; --")  # type: ignore[arg-type]
