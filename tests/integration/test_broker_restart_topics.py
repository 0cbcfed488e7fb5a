"""A restarted embedded broker re-creates topics its own way: Tansu 0.6 auto-creates any
topic a client asks metadata for, with its default partition count (4), often before the
relay has created it with ours. A consumer that joined with the layout it had cached must
follow the real one, or the records of every partition it does not know are never read
(why `test_broker_restart_while_everything_runs` lost about a quarter of its deals).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.embedded import EmbeddedBroker
from shared.kafka import (
    AssignmentListener,
    LayoutWatch,
    ensure_topics,
    make_admin,
    make_consumer,
    stop_quietly,
)
from shared.topics import TopicSpec

BEFORE = TopicSpec("layout.v1", partitions=2)
AFTER = TopicSpec("layout.v1", partitions=4)


class Member:
    """A group member as the forecast worker runs one: replaced when the layout changes."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.group = f"layout-{uuid.uuid4().hex[:6]}"
        self.consumer, self.watch = self._new()

    def _new(self) -> tuple[AIOKafkaConsumer, LayoutWatch]:
        consumer = make_consumer(self.bootstrap, group_id=self.group, client_id="layout")
        watch = LayoutWatch(consumer, [BEFORE.name])

        async def assigned(_: set[TopicPartition]) -> None:
            watch.assigned()

        async def revoked(_: set[TopicPartition]) -> None:
            return None

        consumer.subscribe([BEFORE.name], listener=AssignmentListener(assigned, revoked))
        return consumer, watch

    async def start(self) -> None:
        await self.consumer.start()

    async def poll(self) -> list[bytes]:
        if self.watch.changed():
            await stop_quietly(self.consumer)
            self.consumer, self.watch = self._new()
            await self.consumer.start()
        batch = await self.consumer.getmany(timeout_ms=200)
        return [r.value or b"" for records in batch.values() for r in records]


async def test_a_group_member_follows_a_topic_recreated_with_more_partitions(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    admin = make_admin(broker.bootstrap, client_id="layout-admin")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    member = Member(broker.bootstrap)
    try:
        await admin.start()
        await ensure_topics(admin, [BEFORE])
        await member.start()
        deadline = time.monotonic() + 30
        while len(member.consumer.assignment()) < BEFORE.partitions:
            assert time.monotonic() < deadline, "the consumer never joined"
            await member.poll()

        # What a restart does, without the restart's other effects on the client.
        await admin.delete_topics([BEFORE.name])
        await ensure_topics(admin, [AFTER])
        await producer.start()
        assert len(await producer.partitions_for(AFTER.name)) == AFTER.partitions
        for p in range(AFTER.partitions):
            await producer.send_and_wait(AFTER.name, f"p{p}".encode(), partition=p)

        seen: set[bytes] = set()
        deadline = time.monotonic() + 30
        while len(seen) < AFTER.partitions and time.monotonic() < deadline:
            seen.update(await member.poll())
        assert seen == {f"p{p}".encode() for p in range(AFTER.partitions)}
    finally:
        await producer.stop()
        await stop_quietly(member.consumer)
        await admin.close()
        broker.stop()
