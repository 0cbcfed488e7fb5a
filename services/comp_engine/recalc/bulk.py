"""Recomputing every rep at once (an admin's full recompute, a benchmark): the reps in
chunks sized by the deals they read (a heavy manager's chunk holding its team, whose deals
it reads anyway), each chunk loaded, computed and optionally posted on its own, so memory
stays bounded by a chunk however large the ledger, and chunks can fan out to worker
processes (`salesops comp recompute --processes N`).

This is the bulk path only: a won deal's own recalculation stays in `recalculator.py`,
one small round at a time. Each chunk computes the same `engine.compute` over the same
inputs a round would load for those reps, so the lines (traces included) do not depend on
how the reps were chunked or on how many processes ran them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from multiprocessing import get_context

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.comp_engine.calc.engine import Result, compute, line_order
from services.comp_engine.calc.lines import Line
from services.comp_engine.calc.posting import differences
from services.comp_engine.deals.history import StageNames
from services.comp_engine.intake.repository import DEAL_REPS
from services.comp_engine.recalc import repository
from shared.db import create_engine
from shared.gc_pause import gc_paused

DEALS_PER_CHUNK = 20_000
"""About this many deals loaded per chunk: a few hundred MB of histories and lines."""


@dataclass
class ChunkDone:
    """What one chunk did; `lines` only when the caller asked to keep them."""

    reps: int = 0
    computed: int = 0
    posted: int = 0
    waiting: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)

    def add(self, other: ChunkDone) -> None:
        self.reps += other.reps
        self.computed += other.computed
        self.posted += other.posted
        self.waiting += other.waiting
        for currency, amount in other.totals.items():
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + amount
        self.lines += other.lines


async def rep_weights(conn: AsyncConnection) -> dict[str, int]:
    """Every assigned rep and the deals a recalculation of it reads: its own, and for a
    manager those of everyone who ever reported to it."""
    return (await _weights_and_teams(conn))[0]


async def plan_chunks(
    conn: AsyncConnection, *, limit: int = DEALS_PER_CHUNK, only: Collection[str] | None = None
) -> list[list[str]]:
    """The chunks of every assigned rep (or of those in `only`), teams kept together as
    `chunks` says."""
    weights, teams = await _weights_and_teams(conn)
    if only is not None:
        weights = {rep: w for rep, w in weights.items() if rep in only}
    return chunks(weights, limit=limit, teams=teams)


async def _weights_and_teams(conn: AsyncConnection) -> tuple[dict[str, int], dict[str, set[str]]]:
    """`rep_weights`, and per manager everyone who ever reported to it."""
    reps = {a.rep_id for a in await repository.load_assignments(conn)}
    counts = {
        row.rep_id: int(row.n)
        for row in await conn.execute(
            select(DEAL_REPS.c.rep_id, func.count().label("n")).group_by(DEAL_REPS.c.rep_id)
        )
    }
    reporting = await repository.load_reporting(conn)
    managers = {line.manager_id for line in reporting}
    weights = {}
    teams = {}
    for rep in reps:
        under = repository.reports_under(reporting, [rep]) - {rep} if rep in managers else set()
        weights[rep] = 1 + counts.get(rep, 0) + sum(counts.get(r, 0) for r in under)
        if under:
            teams[rep] = under
    return weights, teams


def chunks(
    weights: dict[str, int],
    *,
    limit: int = DEALS_PER_CHUNK,
    teams: Mapping[str, Collection[str]] | None = None,
) -> list[list[str]]:
    """Reps in order, cut where the next rep would take a chunk's deals over `limit` (a
    rep heavier than the limit is a chunk by itself).

    A manager heavier than the limit reads every deal of its reports anyway, so its chunk
    takes those reports too (the ones no lighter manager took first) rather than another
    chunk reading and crediting the same deals again: the lowest managers claim their
    teams first, so a director over them keeps a chunk of its own, not the whole company."""
    found: list[list[str]] = []
    taken: set[str] = set()
    heavy = sorted((weights[m], m) for m in (teams or {}) if m in weights and weights[m] > limit)
    for _, manager in heavy:
        if manager in taken:
            continue
        assert teams is not None
        team = sorted(r for r in teams[manager] if r in weights and r not in taken)
        found.append([manager, *team])
        taken.update(found[-1])
    current: list[str] = []
    load = 0
    for rep in sorted(weights):
        if rep in taken:
            continue
        if current and load + weights[rep] > limit:
            found.append(current)
            current, load = [], 0
        current.append(rep)
        load += weights[rep]
    if current:
        found.append(current)
    return found


async def run_chunk(
    conn: AsyncConnection,
    rep_ids: Sequence[str],
    *,
    names: StageNames,
    today: date,
    post: bool,
    keep_lines: bool = False,
    shared: repository.Shared | None = None,
) -> ChunkDone:
    if post:
        # The reps held before their inputs are read: a round that posted a rep's change
        # after this chunk read it would otherwise have its posting undone by this one,
        # computed from the older inputs, and its dirty mark already cleared.
        await repository.hold(conn, rep_ids=rep_ids)
    with gc_paused():
        histories, inputs = await repository.load_inputs(
            conn, rep_ids=rep_ids, names=names, shared=shared
        )
        result: Result = await asyncio.to_thread(
            compute, histories, inputs, today=today, only=set(rep_ids)
        )
        del histories
    posted = 0
    if post:
        held = await repository.posted(conn, rep_ids=rep_ids)
        closed = await repository.closes_in_turn(conn)
        if closed != inputs.closed_periods:
            # A close approved while this computed (`recalculator.recalculate`); the
            # histories are gone, so the chunk is read again, seeing that close.
            histories, inputs = await repository.load_inputs(
                conn, rep_ids=rep_ids, names=names, shared=shared
            )
            result = await asyncio.to_thread(
                compute, histories, inputs, today=today, only=set(rep_ids)
            )
            del histories
        postings = differences(result.lines, held, closed=set(closed))
        posted = await repository.post(conn, postings=postings, cause="recalculation")
        await repository.replace_waiting(conn, rep_ids=rep_ids, waiting=result.waiting)
        await repository.record_computed(conn, rep_ids=rep_ids, today=today)
    done = ChunkDone(
        reps=len(rep_ids), computed=len(result.lines), posted=posted, waiting=len(result.waiting)
    )
    for line in result.lines:
        done.totals[line.currency] = done.totals.get(line.currency, Decimal(0)) + line.amount
    if keep_lines:
        done.lines = result.lines
    return done


async def _chunk_in_process(
    url: str, rep_ids: Sequence[str], names: StageNames, today: date, post: bool, keep: bool
) -> ChunkDone:
    engine = create_engine(url, application_name="salesops-comp-bulk", pool_size=1)
    try:
        async with engine.begin() as conn:
            return await run_chunk(
                conn, rep_ids, names=names, today=today, post=post, keep_lines=keep
            )
    finally:
        await engine.dispose()


def _worker(
    url: str, rep_ids: list[str], names: StageNames, today: date, post: bool, keep: bool
) -> ChunkDone:
    """One chunk in a worker process: its own event loop, connection and transaction."""
    return asyncio.run(_chunk_in_process(url, rep_ids, names, today, post, keep))


async def recompute_all(
    url: str,
    *,
    names: StageNames,
    today: date,
    post: bool = False,
    processes: int = 1,
    deals_per_chunk: int = DEALS_PER_CHUNK,
    keep_lines: bool = False,
    progress: Callable[[ChunkDone], None] | None = None,
) -> ChunkDone:
    """Every assigned rep, chunk by chunk, each chunk in a transaction of its own (posting
    its differences when `post`); `processes` > 1 runs chunks in that many processes."""
    engine = create_engine(url, application_name="salesops-comp-bulk", pool_size=1)
    total = ChunkDone()
    try:
        async with engine.connect() as conn:
            plan = await plan_chunks(conn, limit=deals_per_chunk)
            shared = await repository.load_shared(conn) if processes <= 1 else None
        if processes <= 1:
            for rep_ids in plan:
                async with engine.begin() as conn:
                    done = await run_chunk(
                        conn,
                        rep_ids,
                        names=names,
                        today=today,
                        post=post,
                        keep_lines=keep_lines,
                        shared=shared,
                    )
                total.add(done)
                if progress:
                    progress(done)
            return await _finished(engine, total, post=post)
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
            futures = [
                loop.run_in_executor(pool, _worker, url, r, names, today, post, keep_lines)
                for r in plan
            ]
            for future in futures:
                done = await future
                total.add(done)
                if progress:
                    progress(done)
        return await _finished(engine, total, post=post)
    finally:
        await engine.dispose()


async def _finished(engine: AsyncEngine, total: ChunkDone, *, post: bool) -> ChunkDone:
    """After a posting run, the ledger's statistics refreshed: a first recompute can post
    most of the ledger at once, and until autovacuum analyzes it the planner reads a rep's
    lines (a simulation's plans-as-they-are side, `simulate/posted.py`) by scanning the
    whole table, 6x slower at 1M lines."""
    if post and total.posted:
        async with engine.begin() as conn:
            await repository.analyze_ledger(conn)
    return _in_order(total)


def _in_order(total: ChunkDone) -> ChunkDone:
    """Kept lines in the order one whole calculation gives them: a team's chunk holds reps
    that are not neighbours in rep order, so the chunks' lines, each in order, are not."""
    total.lines.sort(key=line_order)
    return total
