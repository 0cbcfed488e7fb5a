"""Simulating a plan change over the stored deals: the group's reps in chunks (as the bulk
recompute cuts them), each chunk's inputs read once and computed under the draft, and the
plans as they are read from the ledger where it is current (`posted.py`) or else computed
too, all reduced to per-rep totals and attainment bands before the next chunk.

Only the reduced figures outlive a chunk, so a year of a large team's deals needs the
memory of one chunk, and the indexes `Inputs` builds serve both computations of it (the
draft shares every table but the assignments and plans). With `workers` (`workers.py`) the
chunks fan out to worker processes, each reading its chunks on a connection of its own (kept
from chunk to chunk, `_worker`), and only the reduced figures come back.

Every chunk is read in the caller's snapshot, the workers' too (`_Snapshot`): the whole
simulation reads one moment of the database, as it does without workers. So the inputs
every chunk reads whole (`repository.Shared`: plans, assignments, reporting lines, FX) are
the same for all chunks, and a worker reads them once a simulation rather than once a chunk.
They are read in the snapshot of the chunk's ledger and deals, so the ledger's `usable`
decision (`posted.py`) rests on one snapshot as before.
"""

from __future__ import annotations

import asyncio
import atexit
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import Waiting, compute
from services.comp_engine.calc.inputs import Inputs, PlanVersion
from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import bulk, repository
from services.comp_engine.simulate import posted, run
from services.comp_engine.simulate.workers import Workers
from shared.db import create_engine, export_snapshot, use_snapshot
from shared.gc_pause import gc_paused


@dataclass
class Stored:
    """What a stored-deals simulation answers, summed over its chunks."""

    simulated: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    current: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    bands: Counter[str] = field(default_factory=lambda: Counter(run.attainment_bands([])))
    waiting: list[Waiting] = field(default_factory=list)
    from_ledger: int = 0
    """Reps whose plans-as-they-are side was read from the ledger rather than computed."""
    lines: list[dict[str, object]] = field(default_factory=list)
    """The simulated lines of the rep asked for (`_Job.lines_for`), as `run.line_json`."""

    def add(self, other: Stored) -> None:
        """A chunk's figures: its reps are no other chunk's, so per-rep totals only join."""
        self.simulated.update(other.simulated)
        self.current.update(other.current)
        self.bands.update(other.bands)
        self.waiting += other.waiting
        self.from_ledger += other.from_ledger
        self.lines += other.lines


@dataclass(frozen=True)
class _Job:
    """What a chunk's simulation needs besides its reps (sent to worker processes)."""

    version: PlanVersion
    names: StageNames
    today: date
    start: date
    end: date
    use_ledger: bool
    lines_for: str | None = None


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
    workers: Workers | None = None,
    url: str | None = None,
    use_ledger: bool = True,
    lines_for: str | None = None,
) -> Stored:
    """The group's simulation; with `workers` (and the database `url` they connect to)
    its chunks run in those processes. `use_ledger=False` computes the plans as they are
    for every rep (a benchmark's cold case); `lines_for` names a rep whose simulated lines
    (with traces) come back too."""
    job = _Job(version, names, today, start, end, use_ledger, lines_for)
    plan = await bulk.plan_chunks(conn, limit=deals_per_chunk, only=set(reps))
    found = Stored()
    if workers is None or url is None or len(plan) <= 1:
        shared = await repository.load_shared(conn)
        for rep_ids in plan:
            found.add(await _chunk(conn, rep_ids, job, shared))
        return found
    snapshot = _Snapshot(await export_snapshot(conn), uuid.uuid4().hex)
    submitted = [workers.executor.submit(_worker, url, rep_ids, job, snapshot) for rep_ids in plan]
    try:
        for future in submitted:
            found.add(await asyncio.wrap_future(future))
    except BaseException:
        # The caller's transaction, and with it the snapshot, ends with this failure: the
        # chunks not started are dropped, and the ones running are waited for, so none
        # reads a snapshot that is gone or holds a worker for an answer nobody awaits.
        for future in submitted:
            future.cancel()
        await asyncio.to_thread(wait, submitted)
        raise
    return found


async def _chunk(
    conn: AsyncConnection,
    rep_ids: Sequence[str],
    job: _Job,
    shared: repository.Shared | None = None,
) -> Stored:
    """One chunk read once, computed under the draft and, for the reps whose ledger does
    not stand in for it, as it is; reduced.

    Everything happens with the collector paused, and the chunk's objects are dropped
    before it resumes: resumed over them, its first collection walks the millions of
    containers the chunk allocated (a tenth of the chunk's time, measured) only to find
    them still live. So each computation is reduced in the thread that runs it
    (`_reduced`): a computation returned to the loop stays referenced by its future until
    the loop's step that resumed this coroutine ends, past the pause."""
    found = Stored()
    with gc_paused():
        histories, inputs = await repository.load_inputs(
            conn, rep_ids=rep_ids, names=job.names, shared=shared
        )
        ledger = await posted.read(conn, rep_ids=rep_ids) if job.use_ledger else posted.Ledger()
        read = ledger.usable(inputs, job.today)
        found.current.update(ledger.totals(read, job.start, job.end))
        found.from_ledger = len(read)
        only = set(rep_ids)
        if rest := only - read:
            current = await asyncio.to_thread(_reduced, histories, inputs, job, rest, bands=False)
            found.current.update(current.totals)
        drafted = run.under_draft(inputs, job.version, rep_ids)
        simulated = await asyncio.to_thread(_reduced, histories, drafted, job, only, bands=True)
        found.simulated.update(simulated.totals)
        found.bands.update(simulated.bands)
        found.waiting += simulated.waiting
        found.lines += simulated.lines
        del histories, inputs, drafted
    return found


class _Reduced(NamedTuple):
    totals: dict[tuple[str, str], Decimal]
    bands: dict[str, int]
    waiting: list[Waiting]
    lines: list[dict[str, object]]


def _reduced(
    histories: Mapping[str, Sequence[DealState]],
    inputs: Inputs,
    job: _Job,
    reps: set[str],
    *,
    bands: bool,
) -> _Reduced:
    """The reps' computation reduced to their totals in range, attainment bands and the
    lines of `job.lines_for` (if `bands`: the draft's side) and waiting deals; the other
    lines are freed here, as the computation returns."""
    result = compute(histories, inputs, today=job.today, only=reps)
    lines = run.in_range(result.lines, job.start, job.end)
    counted = run.attainment_bands(lines) if bands else {}
    shown = (
        [run.line_json(line) for line in lines if line.key.rep_id == job.lines_for]
        if bands and job.lines_for in reps
        else []
    )
    return _Reduced(dict(run.totals(lines)), counted, result.waiting, shown)


@dataclass(frozen=True)
class _Snapshot:
    """The caller's snapshot (`shared.db.export_snapshot`), valid while its transaction
    stays open: `simulate_stored` awaits every chunk in it. `run` names the simulation,
    which a worker keeps the shared inputs it read for (`_SHARED`): a snapshot's id is not
    unique over time."""

    id: str
    run: str


_SHARED: dict[str, repository.Shared] = {}
"""A worker's shared inputs of its latest simulation, by `_Snapshot.run`: read by its first
chunk of a simulation, in the simulation's one snapshot, and the same for every later one.
A chunk of another simulation replaces them. Reading them took ~33-36 ms of the worker's
CPU a chunk (the plans validated, the reporting lines built) and the server's."""


async def _shared_of(conn: AsyncConnection, snapshot: _Snapshot) -> repository.Shared:
    shared = _SHARED.get(snapshot.run)
    if shared is None:
        shared = await repository.load_shared(conn)
        _SHARED.clear()
        _SHARED[snapshot.run] = shared
    return shared


async def _chunk_in_process(
    url: str, rep_ids: Sequence[str], job: _Job, snapshot: _Snapshot
) -> Stored:
    async with _engine(url).connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await use_snapshot(conn, snapshot.id)
        await repository.without_parallel_plans(conn)
        return await _chunk(conn, rep_ids, job, await _shared_of(conn, snapshot))


def _worker(url: str, rep_ids: list[str], job: _Job, snapshot: _Snapshot) -> Stored:
    """One chunk in a worker process, on the process's event loop and connection, which
    outlive the chunk (the pool checks the connection before lending it again). A backend
    of its own for each chunk cost the server ~80 ms of CPU a chunk more (bench_main_1m ae
    chunks 5-7, 21 runs: 358 against 277 ms; an idle new backend costs nothing measurable):
    a new backend fills its catalog caches, and the driver introspects the JSON types, all
    over again."""
    return _runner().run(_chunk_in_process(url, rep_ids, job, snapshot))


@cache
def _runner() -> asyncio.Runner:
    """The worker process's event loop: the connection `_engine` keeps is bound to it.
    Closed as the process exits (a spawned worker exits through `sys.exit`, so `atexit`
    runs), after the engine: handlers run in the reverse of their registration."""
    runner = asyncio.Runner()
    atexit.register(runner.close)
    return runner


@cache
def _engine(url: str) -> AsyncEngine:
    """The worker's engine, its one connection kept between simulations (a backend slot
    per worker for the service's life) and closed as the process exits, rather than
    dropped under the server."""
    engine = create_engine(url, application_name="salesops-comp-simulate", pool_size=1)
    atexit.register(lambda: _runner().run(engine.dispose()))
    return engine
