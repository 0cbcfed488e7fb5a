"""Where dirty reps get their ledger brought up to date: compute, compare, post the
differences. A supervised task of the comp engine.

Each round claims up to `batch` dirty reps (`FOR UPDATE SKIP LOCKED`: replicas share the
work), computes their lines from scratch (`calc.engine`), posts `expected - posted` per key
(`calc.posting`), clears the marks and commits, all in one transaction: a crash leaves the
reps dirty and nothing half-posted, and because only differences are posted, running a rep
twice posts nothing the second time. While reps are dirty rounds follow each other; when
none is, the task looks again every `poll_seconds` (one indexed read), which bounds how long
a committed change waits before its ledger lines are posted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.comp_engine.calc.engine import Result, Waiting, compute
from services.comp_engine.calc.posting import differences
from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import repository

log = logging.getLogger("salesops.comp.recalc")


async def recalculate(
    conn: AsyncConnection, *, rep_ids: list[str], names: StageNames, today: date
) -> tuple[int, Result]:
    """Post what the reps' ledgers lack; how many lines were posted, and the calculation."""
    histories, inputs = await repository.load_inputs(conn, rep_ids=rep_ids, names=names)
    # Pure and CPU-bound: off the event loop, so the service's API keeps answering.
    result = await asyncio.to_thread(compute, histories, inputs, today=today, only=set(rep_ids))
    held = await repository.posted(conn, rep_ids=rep_ids)
    postings = differences(result.lines, held, closed=set(inputs.closed_periods))
    ids = await repository.post(conn, postings=postings, cause="recalculation")
    await repository.replace_waiting(conn, rep_ids=rep_ids, waiting=result.waiting)
    return len(ids), result


class Recalculator:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        names: StageNames,
        batch: int = 50,
        poll_seconds: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._names = names
        self._batch = batch
        self._poll = poll_seconds
        self._clock = clock

    async def run(self) -> None:
        while True:
            if not await self.round():
                await asyncio.sleep(self._poll)

    async def round(self) -> int:
        """One transaction: claim, recalculate, post, clear. How many reps it did.

        Each rep is recalculated under a savepoint of its own: a rep whose calculation
        fails (data no plan foresaw) is listed in the waiting place with the error and its
        mark cleared, instead of failing the round for every rep claimed with it, again and
        again. The next change to its inputs marks it, and tries it, again."""
        today = self._clock().date()
        posted = 0
        async with self._engine.begin() as conn:
            rep_ids = await repository.claim_dirty(conn, limit=self._batch)
            if not rep_ids:
                return 0
            for rep_id in rep_ids:
                try:
                    async with conn.begin_nested():
                        count, _ = await recalculate(
                            conn, rep_ids=[rep_id], names=self._names, today=today
                        )
                    posted += count
                except Exception as exc:
                    log.exception("commission recalculation of rep %s failed", rep_id)
                    reason = f"recalculation failed: {type(exc).__name__}: {exc}"[:1000]
                    await repository.replace_waiting(
                        conn, rep_ids=[rep_id], waiting=[Waiting(rep_id, "recalculation", reason)]
                    )
            await repository.clear_dirty(conn, rep_ids=rep_ids)
        log.info("recalculated %d reps, posted %d lines", len(rep_ids), posted)
        return len(rep_ids)
