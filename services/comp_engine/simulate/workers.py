"""The worker processes stored simulations fan their chunks out to, started with the
service rather than per request.

A worker is a spawned interpreter: before it computes anything it imports the calculation,
the plan models and SQLAlchemy, 3-4 s on a 2-core machine, with both cores busy when two
start at once. Started per request, that was a fixed cost of every simulation; started with
the service (and warmed, so each has imported before the first request), a simulation pays
only for its chunks.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import get_context
from multiprocessing.synchronize import Barrier

WARM_UP_SECONDS = 300.0
"""How long a worker waits at start-up for the others: a worker that never starts breaks
the pool (its simulations fail) rather than holding the others for ever."""


class Workers:
    def __init__(self, processes: int) -> None:
        context = get_context("spawn")
        self.executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=_warm,
            initargs=(context.Barrier(processes),),
        )
        # Workers spawn on demand, one per task submitted while none is idle: as many tasks
        # as workers starts them all now. Each imports, then waits for the others, so no
        # worker takes a second task before every one of them is warm.
        self._warming = [self.executor.submit(os.getpid) for _ in range(processes)]

    def wait_ready(self) -> None:
        """Block until every worker has started and imported (a benchmark's start-up)."""
        wait(self._warming)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _warm(started: Barrier) -> None:
    import services.comp_engine.simulate.stored  # noqa: F401  (the import is the warm-up)

    started.wait(WARM_UP_SECONDS)
