"""Batches being applied while the consumer reads and decodes the next: at most one per
partition, at most `depth` in all.

Applying a batch is mostly waiting on PostgreSQL; decoding and folding the next is Python.
Run one after the other, each side idles while the other works. Two batches of different
partitions touch different deals (the relay keys deal events by deal id) and different
stored offsets, exactly as two replicas of the worker each owning some partitions do, so
they may be applied in concurrent transactions. Within a partition, batches stay strictly
in order: a partition with a batch in flight is not read again until that batch is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Coroutine
from typing import Any

from aiokafka import TopicPartition


class InFlight:
    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._tasks: dict[asyncio.Task[None], frozenset[TopicPartition]] = {}

    def __bool__(self) -> bool:
        return bool(self._tasks)

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self._depth

    @property
    def busy(self) -> frozenset[TopicPartition]:
        """The partitions with a batch in flight: not to be read until it is done."""
        return frozenset().union(*self._tasks.values())

    def start(
        self, work: Coroutine[Any, Any, None], partitions: Collection[TopicPartition]
    ) -> None:
        task = asyncio.create_task(work)
        self._tasks[task] = frozenset(partitions)

    async def wait_one(self) -> None:
        """Wait until a batch is done; its error, if any, is raised here."""
        if not self._tasks:
            return
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self._finish(done)

    async def drain(self) -> None:
        """Wait for every batch in flight; the first error is raised once all are done, so
        that nothing is left running when the caller acts on it."""
        if not self._tasks:
            return
        done, _ = await asyncio.wait(self._tasks)
        self._finish(done)

    async def settle(self) -> None:
        """Wait for every batch in flight without raising: for a rebalance listener, which
        must not give up a partition while a transaction on it is open. The loop still sees
        the errors (`wait_one`, `drain`), as the tasks stay until it collects them."""
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def cancel(self) -> None:
        """Stop every batch in flight: each is rolled back and read again from the stored
        offsets by the next member, so nothing acknowledged is lost."""
        tasks, self._tasks = list(self._tasks), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _finish(self, done: set[asyncio.Task[None]]) -> None:
        error: BaseException | None = None
        for task in done:
            del self._tasks[task]
            if error is None:
                error = Cancelled() if task.cancelled() else task.exception()
        if error is not None:
            raise error


class Cancelled(RuntimeError):
    """A batch was cancelled by someone else than the loop: the partition's position is
    already past it, so the loop must start again from the stored offsets."""
