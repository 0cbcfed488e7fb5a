"""Simulating a plan change over the stored deals: the group's reps in chunks (as the bulk
recompute cuts them), each chunk's inputs read once and computed twice, as they are and
under the draft, and reduced to per-rep totals and attainment bands before the next chunk.

Only the reduced figures outlive a chunk, so a year of a large team's deals needs the
memory of one chunk, and the indexes `Inputs` builds serve both computations of it (the
draft shares every table but the assignments and plans). With `processes` > 1 the chunks
fan out to worker processes, each reading its chunk on a connection of its own (so from a
snapshot of its own, not the caller's), and only the reduced figures come back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from multiprocessing import get_context

from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.calc.engine import Waiting, compute
from services.comp_engine.calc.inputs import PlanVersion
from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import bulk, repository
from services.comp_engine.simulate import run
from shared.db import create_engine
from shared.gc_pause import gc_paused


@dataclass
class Stored:
    """What a stored-deals simulation answers, summed over its chunks."""

    simulated: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    current: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    bands: Counter[str] = field(default_factory=lambda: Counter(run.attainment_bands([])))
    waiting: list[Waiting] = field(default_factory=list)

    def add(self, other: Stored) -> None:
        """A chunk's figures: its reps are no other chunk's, so per-rep totals only join."""
        self.simulated.update(other.simulated)
        self.current.update(other.current)
        self.bands.update(other.bands)
        self.waiting += other.waiting


@dataclass(frozen=True)
class _Job:
    """What a chunk's simulation needs besides its reps (sent to worker processes)."""

    version: PlanVersion
    names: StageNames
    today: date
    start: date
    end: date


async def simulate_stored(
    conn: AsyncConnection,
    version: PlanVersion,
    *,
    reps: Sequence[str],
    names: StageNames,
    today: date,
    start: date,
    end: date,
    deals_per_chunk: int = bulk.DEALS_PER_CHUNK,
    processes: int = 1,
    url: str | None = None,
) -> Stored:
    """The group's simulation; `processes` > 1 (with the database `url` the workers
    connect to) runs its chunks in that many processes."""
    job = _Job(version, names, today, start, end)
    plan = await bulk.plan_chunks(conn, limit=deals_per_chunk, only=set(reps))
    found = Stored()
    if processes <= 1 or url is None or len(plan) <= 1:
        shared = await repository.load_shared(conn)
        for rep_ids in plan:
            found.add(await _chunk(conn, rep_ids, job, shared))
        return found
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        futures = [loop.run_in_executor(pool, _worker, url, rep_ids, job) for rep_ids in plan]
        for future in futures:
            found.add(await future)
    return found


async def _chunk(
    conn: AsyncConnection,
    rep_ids: Sequence[str],
    job: _Job,
    shared: repository.Shared | None = None,
) -> Stored:
    """One chunk read once and computed as it is and under the draft, reduced.

    Everything happens with the collector paused, and the chunk's objects are dropped
    before it resumes: resumed over them, its first collection walks the millions of
    containers the chunk allocated (a tenth of the chunk's time, measured) only to find
    them still live."""
    found = Stored()
    with gc_paused():
        histories, inputs = await repository.load_inputs(
            conn, rep_ids=rep_ids, names=job.names, shared=shared
        )
        only = set(rep_ids)
        current = await asyncio.to_thread(compute, histories, inputs, today=job.today, only=only)
        found.current.update(run.totals(run.in_range(current.lines, job.start, job.end)))
        del current
        drafted = run.under_draft(inputs, job.version, rep_ids)
        simulated = await asyncio.to_thread(compute, histories, drafted, today=job.today, only=only)
        del histories, inputs, drafted
        new_lines = run.in_range(simulated.lines, job.start, job.end)
        found.simulated.update(run.totals(new_lines))
        found.bands.update(run.attainment_bands(new_lines))
        found.waiting += simulated.waiting
        del simulated, new_lines
    return found


async def _chunk_in_process(url: str, rep_ids: Sequence[str], job: _Job) -> Stored:
    engine = create_engine(url, application_name="salesops-comp-simulate", pool_size=1)
    try:
        async with engine.connect() as conn:
            return await _chunk(conn, rep_ids, job)
    finally:
        await engine.dispose()


def _worker(url: str, rep_ids: list[str], job: _Job) -> Stored:
    """One chunk in a worker process: its own event loop and connection."""
    return asyncio.run(_chunk_in_process(url, rep_ids, job))
