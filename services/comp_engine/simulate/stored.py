"""Simulating a plan change over the stored deals: the group's reps in chunks (as the bulk
recompute cuts them), each chunk's inputs read once and computed twice, as they are and
under the draft, and reduced to per-rep totals and attainment bands before the next chunk.

Only the reduced figures outlive a chunk, so a year of a large team's deals needs the
memory of one chunk, and the indexes `Inputs` builds serve both computations of it (the
draft shares every table but the assignments and plans).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.calc.engine import Waiting, compute
from services.comp_engine.calc.inputs import PlanVersion
from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import bulk, repository
from services.comp_engine.simulate import run
from shared.gc_pause import gc_paused


@dataclass
class Stored:
    """What a stored-deals simulation answers, summed over its chunks."""

    simulated: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    current: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    bands: Counter[str] = field(default_factory=lambda: Counter(run.attainment_bands([])))
    waiting: list[Waiting] = field(default_factory=list)


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
) -> Stored:
    found = Stored()
    for rep_ids in await bulk.plan_chunks(conn, limit=deals_per_chunk, only=set(reps)):
        with gc_paused():
            histories, inputs = await repository.load_inputs(conn, rep_ids=rep_ids, names=names)
            only = set(rep_ids)
            current = await asyncio.to_thread(compute, histories, inputs, today=today, only=only)
            found.current.update(run.totals(run.in_range(current.lines, start, end)))
            del current
            drafted = run.under_draft(inputs, version, rep_ids)
            simulated = await asyncio.to_thread(compute, histories, drafted, today=today, only=only)
        new_lines = run.in_range(simulated.lines, start, end)
        found.simulated.update(run.totals(new_lines))
        found.bands.update(run.attainment_bands(new_lines))
        found.waiting += simulated.waiting
    return found
