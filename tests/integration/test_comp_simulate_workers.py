"""The stored simulation's worker processes (`simulate/workers.py`): all started and warm
once ready, each a process of its own, and closed for good."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import BrokenExecutor

import pytest

from services.comp_engine.simulate.workers import Workers

pytestmark = pytest.mark.integration

STORED = "services.comp_engine.simulate.stored"


def _imported() -> bool:
    return STORED in sys.modules


def test_every_worker_starts_warm_and_closes() -> None:
    before = set(multiprocessing.active_children())
    workers = Workers(2)
    try:
        workers.wait_ready()
        started = set(multiprocessing.active_children()) - before
        warm = [workers.executor.submit(_imported).result() for _ in range(4)]
    finally:
        workers.close()
    assert len(started) == 2, "every worker was started at once"
    assert warm == [True] * 4, "every worker had imported the calculation"
    assert not set(multiprocessing.active_children()) & started
    with pytest.raises((RuntimeError, BrokenExecutor)):
        workers.executor.submit(os.getpid)
