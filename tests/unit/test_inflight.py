"""Batches in flight: a partition stays busy until its batch is done, and a batch that
failed or was cancelled behind the loop's back is raised, so the loop restarts from the
stored offsets instead of reading past records that were never applied."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from shared.inflight import Cancelled, InFlight

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


async def test_a_partition_is_busy_until_its_batch_is_done() -> None:
    batches = InFlight(2)
    release = asyncio.Event()

    async def held() -> None:
        await release.wait()

    batches.start(held(), [P0])
    assert batches.busy == {P0}
    assert not batches.full
    batches.start(asyncio.sleep(0), [P1])
    assert batches.full
    await batches.wait_one()  # the quick one
    assert batches.busy == {P0}
    release.set()
    await batches.drain()
    assert not batches
    assert batches.busy == frozenset()


async def test_a_failed_batch_is_raised_to_the_loop() -> None:
    async def fails() -> None:
        raise RuntimeError("database away")

    batches = InFlight(2)
    batches.start(fails(), [P0])
    with pytest.raises(RuntimeError, match="database away"):
        await batches.wait_one()
    assert not batches


async def test_a_batch_cancelled_behind_the_loops_back_is_an_error() -> None:
    batches = InFlight(1)
    batches.start(asyncio.sleep(10), [P0])
    (task,) = asyncio.all_tasks() - {asyncio.current_task()}
    task.cancel()
    await batches.settle()  # a rebalance listener waits without raising
    assert batches.busy == {P0}, "the loop has not collected it yet"
    with pytest.raises(Cancelled):
        await batches.drain()
