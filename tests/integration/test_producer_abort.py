"""A producer caught by a broker restart must not resend its batch into the new broker.

Tansu 0.6 stores such a resent batch but leaves the partition's offsets behind it, after
which every produce to that partition fails; `make_producer` + `abort_producer` exist to
keep that from happening. This test restarts a real broker under a producer with batches
in flight and checks that the restarted broker still takes and serves every new record.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.embedded import EmbeddedBroker
from shared.kafka import ACK_SECONDS, abort_producer, ensure_topics, make_producer
from shared.topics import TopicSpec

TOPIC = TopicSpec("restart.check.v1", partitions=3)


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, [TOPIC])
    finally:
        await admin.close()


async def read_values(bootstrap: str, expected: int) -> set[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC.name, p) for p in range(TOPIC.partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        seen: set[bytes] = set()
        deadline = time.monotonic() + 20
        while len(seen) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            seen.update(r.value or b"" for records in batch.values() for r in records)
        return seen
    finally:
        await consumer.stop()


async def test_aborted_producer_leaves_a_restarted_broker_writable(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        await create_topic(broker.bootstrap)
        producer = make_producer(broker.bootstrap, client_id="abort-test")
        await producer.start()
        for i in range(30):
            await producer.send_and_wait(TOPIC.name, key=str(i).encode(), value=b"before")

        broker.kill()
        in_flight = [
            await producer.send(TOPIC.name, key=str(i).encode(), value=b"lost") for i in range(30)
        ]
        await asyncio.sleep(0.3)
        broker.start()  # back before the producer's retry pause is over
        done, _ = await asyncio.wait(in_flight, timeout=ACK_SECONDS)
        assert not done, "a batch was resent to the restarted broker"
        started = time.monotonic()
        await abort_producer(producer)
        assert time.monotonic() - started < 6, "an abort does not wait out in-flight requests"
        await create_topic(broker.bootstrap)

        fresh = make_producer(broker.bootstrap, client_id="abort-test-fresh")
        await fresh.start()
        try:
            values = [f"after-{i}".encode() for i in range(60)]
            sent = [await fresh.send(TOPIC.name, key=v, value=v) for v in values]
            acked = await asyncio.gather(*sent, return_exceptions=True)
        finally:
            await fresh.stop()
        failures = [a for a in acked if isinstance(a, BaseException)]
        assert not failures, failures[:3]
        assert {r.partition for r in acked if not isinstance(r, BaseException)} == {0, 1, 2}
        assert await read_values(broker.bootstrap, len(values)) == set(values)
    finally:
        broker.stop()
