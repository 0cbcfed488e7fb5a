"""How `supervise` paces the restarts of a crashing background loop."""

from __future__ import annotations

from shared.service import supervise


async def test_a_long_healthy_run_starts_the_backoff_over() -> None:
    """Runs lasting these seconds each crash, but the last, which returns."""
    durations = [1.0, 1.0, 1.0, 3600.0, 1.0, 59.0, 60.0, 0.0]
    now = 0.0
    pauses: list[int] = []

    async def run() -> None:
        nonlocal now
        now += durations.pop(0)
        if durations:
            raise RuntimeError("crashed")

    async def pause(attempt: int) -> None:
        pauses.append(attempt)

    await supervise("loop", run, stable_after=60.0, clock=lambda: now, pause=pause)
    assert pauses == [1, 2, 3, 1, 2, 3, 1], "after an hour's run, and a minute's, the first step"
