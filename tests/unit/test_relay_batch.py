"""The relay's batch limit: a slow broker gets smaller batches, a quick one full ones."""

from __future__ import annotations

from services.pipeline_api.events.relay import BatchLimit


def test_unacknowledged_batches_halve_the_limit_down_to_one_row() -> None:
    limit = BatchLimit(500)
    limit.shrink()
    assert limit.now == 250
    for _ in range(20):
        limit.shrink()
    assert limit.now == 1, "a single row still goes out"


def test_acknowledged_batches_grow_the_limit_back_up_to_the_most() -> None:
    limit = BatchLimit(500)
    for _ in range(3):
        limit.shrink()
    assert limit.now == 62
    for _ in range(BatchLimit.GROW_AFTER - 1):
        limit.grow()
    assert limit.now == 62, "one success proves little; a run of them does"
    limit.grow()
    assert limit.now == 124
    for _ in range(100):
        limit.grow()
    assert limit.now == 500


def test_a_failure_restarts_the_run_of_successes() -> None:
    limit = BatchLimit(8)
    limit.shrink()
    for _ in range(BatchLimit.GROW_AFTER - 1):
        limit.grow()
    limit.shrink()
    for _ in range(BatchLimit.GROW_AFTER - 1):
        limit.grow()
    assert limit.now == 2
