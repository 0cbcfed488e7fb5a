"""Where dirty reps get their ledger brought up to date: compute, compare, post the
differences. A supervised task of the comp engine.

Each round claims dirty reps (advisory locks: replicas share the work, and the consumer
marking reps never waits for a round), computes their lines from scratch (`calc.engine`),
posts `expected - posted` per key (`calc.posting`), clears the marks it read and commits,
all in one transaction: a crash leaves the reps dirty and nothing half-posted, and because
only differences are posted, running a rep twice posts nothing the second time. While reps
are dirty rounds follow each other; when none is, the task sleeps until the marking
transaction's notification (`wakeup.py`), or `poll_seconds` if none comes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.comp_engine.calc.engine import Result, Waiting, compute
from services.comp_engine.calc.posting import differences
from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import repository
from services.comp_engine.recalc.wakeup import Wakeup

log = logging.getLogger("salesops.comp.recalc")


async def recalculate(
    conn: AsyncConnection, *, rep_ids: list[str], names: StageNames, today: date
) -> tuple[int, Result]:
    """Post what the reps' ledgers lack; how many lines were posted, and the calculation."""
    histories, inputs = await repository.load_inputs(conn, rep_ids=rep_ids, names=names)
    # Pure and CPU-bound: off the event loop, so the service's API keeps answering.
    result = await asyncio.to_thread(compute, histories, inputs, today=today, only=set(rep_ids))
    held = await repository.posted(conn, rep_ids=rep_ids)
    closed = await repository.closes_in_turn(conn)
    if closed != inputs.closed_periods:
        # A close approved while this computed: clawbacks read the closes, so compute again.
        inputs = replace(inputs, closed_periods=closed)
        result = await asyncio.to_thread(compute, histories, inputs, today=today, only=set(rep_ids))
    postings = differences(result.lines, held, closed=set(closed))
    count = await repository.post(conn, postings=postings, cause="recalculation")
    await repository.replace_waiting(conn, rep_ids=rep_ids, waiting=result.waiting)
    await repository.record_computed(conn, rep_ids=rep_ids, today=today)
    return count, result


class Recalculator:
    """Rounds of recalculation while reps are dirty; in between, asleep until the marking
    transaction's notification (`wakeup`) or, failing that, `poll_seconds`.

    A round claims the longest-dirty reps, at most as many as it can do in about
    `round_seconds` (and `batch`), recalculates them, clears the marks it read and
    commits: a fresh change waits for one short round, not a batch of fifty. Reps not
    claimed keep their old mark time, so they lead the next round and newly dirty reps
    queue behind them: nobody is starved. A mark that arrives while its rep is being
    done has a new version and survives the clear, so the rep is redone."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        names: StageNames,
        batch: int = 50,
        poll_seconds: float = 1.0,
        round_seconds: float = 0.5,
        wakeup: Wakeup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._names = names
        self._batch = batch
        self._poll = poll_seconds
        self._round_seconds = round_seconds
        self._wakeup = wakeup
        self._clock = clock
        self._timer = timer
        self._chunk = 1

    async def run(self) -> None:
        listener = asyncio.create_task(self._wakeup.run()) if self._wakeup else None
        try:
            while True:
                if not await self.round():
                    await self._idle()
        finally:
            if listener is not None:
                listener.cancel()
                with suppress(asyncio.CancelledError):
                    await listener

    async def _idle(self) -> None:
        if self._wakeup is None:
            await asyncio.sleep(self._poll)
        else:
            await self._wakeup.wait(self._poll)

    async def round(self) -> int:
        """One transaction: claim a chunk of reps, recalculate them together, clear the
        marks read, commit. How many reps it did.

        Together, because most of a rep's cost is what every rep reads alike (plans,
        assignments, the hierarchy, FX) and the round trips: a chunk of twenty costs little
        more than a few single reps. The chunk is a cap, sized from the last round so that
        a full round lasts about `round_seconds`; a round takes only what is dirty, so a
        thin stream makes rounds of one rep (the fastest path for a single won deal), and
        a backlog makes bigger rounds, which drain it instead of letting it grow: under
        oldest-first order, work already queued is done sooner in fewer, larger rounds."""
        today = self._clock().date()
        async with self._engine.begin() as conn:
            claims = await repository.claim_dirty(conn, limit=self._chunk)
            if not claims:
                return 0
            started = self._timer()
            posted = await self.recalculate_reps(conn, [c.rep_id for c in claims], today=today)
            self._resize(len(claims), self._timer() - started)
            await repository.clear_dirty(conn, claims=claims)
        log.info("recalculated %d reps, posted %d lines", len(claims), posted)
        return len(claims)

    def _resize(self, done: int, seconds: float) -> None:
        """Next chunk: as many reps as fit in `round_seconds` at this round's pace, rounded
        up so that a round dominated by its fixed cost still lets the chunk grow."""
        fit = done * self._round_seconds / max(seconds, 1e-3)
        self._chunk = max(1, min(self._batch, math.ceil(fit)))

    async def recalculate_reps(
        self, conn: AsyncConnection, rep_ids: list[str], *, today: date
    ) -> int:
        """The reps under a savepoint; how many lines were posted.

        If the calculation fails (data no plan foresaw), each rep is tried again alone,
        and one that fails alone is listed in the waiting place with the error and its mark
        cleared, instead of failing every round it is claimed in, again and again. The
        next change to its inputs marks it, and tries it, again."""
        try:
            async with conn.begin_nested():
                count, _ = await recalculate(conn, rep_ids=rep_ids, names=self._names, today=today)
            return count
        except Exception as exc:
            if len(rep_ids) > 1:
                log.warning("recalculation of %d reps failed; one by one now", len(rep_ids))
                return sum([await self.recalculate_reps(conn, [r], today=today) for r in rep_ids])
            log.exception("commission recalculation of rep %s failed", rep_ids[0])
            reason = f"recalculation failed: {type(exc).__name__}: {exc}"[:1000]
            await repository.forget_computed(conn, rep_ids=rep_ids)
            await repository.replace_waiting(
                conn, rep_ids=rep_ids, waiting=[Waiting(rep_ids[0], "recalculation", reason)]
            )
            return 0
