"""Worker apply benchmark: the forecast worker's consumer against a raw consume + COPY ceiling.

    .venv/bin/python -m benchmarks.worker [--events N] [--wait-quiet S]
    .venv/bin/python -m benchmarks.worker --long --events 3000000 --max-seconds 3600
    .venv/bin/python -m benchmarks.worker --workers 2 --partitions 4 --max-records 2000

What it does, in one run:

1. Infra: embedded PostgreSQL and an embedded Tansu broker, as `benchmarks.intake` (or the
   servers SALESOPS_DATABASE_URL / SALESOPS_KAFKA_BOOTSTRAP_SERVERS name); schema migrated,
   topics created with the relay's layout.
2. Events: a seeded generator writes N deal events (deal.created, then deal.updated of the
   amount, stage, close date, owner or a property, interleaved across many deals in CRM-time
   order; about 2% delivered late, up to a few thousand records after their place, and about
   1% exact redeliveries) straight onto the deal topic with a raw producer, keyed by deal id
   as the relay keys them, in the stored form the relay publishes.
3. Ceiling: a raw aiokafka consumer reads the same records (batches of the worker's
   `max_records`) and COPYs each batch's rows (topic, partition, offset, key, value as
   jsonb) into a scratch table, one transaction per batch.
4. Worker: the real `StoredOffsetConsumer` with the forecast worker's real `ConsumerSpec`,
   in this process, from an empty projection; timed from its first batch to its last. Each
   batch's wall time is split into decode (`sort_batch`: JSON + validation), SQL (time
   inside `AsyncConnection.execute`), handler work outside SQL (changes, fold, rows) and the
   rest (transaction begin/commit, offsets bookkeeping outside `execute`). The process's RSS
   is sampled at the start, every `--rss-every` events and at the end.

`--workers N` runs steps 3 and 4 as N processes of one consumer group each (N raw consumers,
N real workers), splitting the deal topic's `--partitions` as N service replicas would; the
rate is every record over the span from the group's first batch to its last.

`--long` is for RSS over millions of events: no ceiling, and the events are generated and
produced `--chunk` at a time (each chunk its own deals) while the worker consumes, so
neither process holds the whole stream; the broker's RSS is sampled beside the worker's,
and the run stops early if the machine has under 3 GiB available (Tansu keeps every
record in memory).

The ratio is worker events/s over ceiling events/s in the same run. The exit code is 0
whether or not the target is met (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import multiprocessing
import os
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.engine import make_url

from benchmarks.intake import (
    Snapshot,
    _run,
    broker,
    cpu_delta,
    cpu_snapshot,
    database,
    machine,
    percentile,
    postmaster_pid,
    wait_quiet,
)

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
SOURCE = "app://bench-worker"
TARGET_EVENTS_PER_S = 20_000
STAGES = ("new", "qualified", "proposal", "negotiation", "closedwon", "closedlost")


# --------------------------------------------------------------------------- events


def deal_events(count: int, *, seed: int, prefix: str = "") -> list[tuple[bytes, bytes]]:
    """(key, value) of `count` deal events in delivery order: CRM-time order across deals,
    with late deliveries and exact redeliveries mixed in. `prefix` starts every deal and
    event id, so that chunks of a long stream name different deals."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    per_deal = 8  # a created and seven updates on average
    deals = max(1, count // per_deal)
    timed: list[tuple[datetime, dict[str, Any]]] = []
    n = 0
    for d in range(deals):
        deal = f"bench-{prefix}{d}"
        t = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 90))
        timed.append((t, _event(CREATED, deal, f"{prefix}{n}", t, _created(rng, d))))
        n += 1
        for _ in range(rng.randrange(3, 2 * per_deal - 2)):
            t += timedelta(minutes=rng.randrange(0, 600))  # zero: exact-time ties
            timed.append((t, _event(UPDATED, deal, f"{prefix}{n}", t, _update(rng, deal))))
            n += 1
    timed.sort(key=lambda pair: pair[0])
    ordered = [ev for _, ev in timed[: count - count // 100]]
    for i in range(len(ordered)):  # late: moved up to 3,000 records after its place
        if rng.random() < 0.02:
            j = min(len(ordered) - 1, i + rng.randrange(1, 3000))
            ordered.insert(j, ordered.pop(i))
    while len(ordered) < count:  # exact redeliveries of earlier events
        i = rng.randrange(len(ordered))
        ordered.insert(rng.randrange(i, len(ordered) + 1), ordered[i])
    return [(ev["subject"].encode(), orjson.dumps(ev)) for ev in ordered]


def _event(type_: str, deal: str, n: str, t: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-{n}",
        "source": SOURCE,
        "type": type_,
        "time": t.isoformat().replace("+00:00", "Z"),
        "subject": deal,
        "data": {"deal_id": deal, **data},
    }


def _created(rng: random.Random, d: int) -> dict[str, Any]:
    return {
        "name": f"Deal {d}",
        "owner_id": f"rep-{rng.randrange(1000)}",
        "amount": f"{rng.randrange(1_000, 200_000)}.00",
        "currency": "USD",
        "stage": "new",
        "close_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "properties": {"segment": rng.choice(["smb", "mid", "ent"])},
    }


def _update(rng: random.Random, deal: str) -> dict[str, Any]:
    kind = rng.randrange(5)
    if kind == 0:
        return {"amount": f"{rng.randrange(1_000, 200_000)}.{rng.randrange(100):02d}"}
    if kind == 1:
        return {"stage": rng.choice(STAGES)}
    if kind == 2:
        return {"close_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"}
    if kind == 3:
        return {"owner_id": f"rep-{rng.randrange(1000)}"}
    return {"properties": {"next_step": f"call {rng.randrange(100)}"}}


async def produce(
    bootstrap: str, topic: str, chunks: Iterator[list[tuple[bytes, bytes]]]
) -> tuple[int, int, float]:
    """Send every event of every chunk (acks=all), awaiting in slices, announcing a broker
    incarnation as the relay does after the first chunk (the worker waits on an empty
    incarnation topic); returns (deals, exact redeliveries, seconds the events took)."""
    from shared import topics

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    deals = duplicates = 0
    try:
        for n, events in enumerate(chunks):
            for i in range(0, len(events), 5_000):
                sent = [
                    await producer.send(topic, key=key, value=value)
                    for key, value in events[i : i + 5_000]
                ]
                await asyncio.gather(*sent)
            deals += len({key for key, _ in events})
            duplicates += len(events) - len(set(events))
            if n == 0:
                await producer.send_and_wait(topics.INCARNATION, b"bench-worker", partition=0)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return deals, duplicates, elapsed


def produce_events(bootstrap: str, count: int, seed: int, chunk: int) -> tuple[int, int, float]:
    """Generate and produce `count` events, `chunk` at a time (each chunk its own deals), so
    that no more than one chunk is ever held in memory; (deals, exact redeliveries, seconds
    producing)."""
    from shared import topics

    def chunks() -> Iterator[list[tuple[bytes, bytes]]]:
        for n, start in enumerate(range(0, count, chunk)):
            size = min(chunk, count - start)
            yield deal_events(size, seed=seed + n, prefix=f"{n}-" if n else "")

    return asyncio.run(produce(bootstrap, topics.DEAL, chunks()))


# --------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    """`time.perf_counter()` at the first batch (CLOCK_MONOTONIC: comparable across
    processes), so that the phases of several processes combine into one span."""
    ended: float = 0.0
    partitions: dict[int, int] = field(default_factory=dict)
    """Records read from each partition."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        return percentile(sorted(self.latencies), p) * 1000


def rss_mib(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


MIN_AVAILABLE_GIB = 3.0
"""A run stops early below this much available memory: the machine is shared, and the
embedded broker keeps every record in memory."""


@dataclass(frozen=True)
class RssSample:
    events: int
    worker_mib: float
    broker_mib: float

    @classmethod
    def now(cls, events: int, broker_pid: int | None) -> RssSample:
        return cls(events, rss_mib(), rss_mib(broker_pid) if broker_pid else float("nan"))


@dataclass
class Progress:
    """What the processes of one group share: the records they have handled together, and
    a barrier they pass before joining the group, so that none reads the whole topic alone
    while the others are still importing."""

    counter: Any
    """A `multiprocessing.Value("q")`."""
    barrier: Any
    """A `multiprocessing.Barrier` of the group's size."""

    def add(self, records: int) -> int:
        with self.counter.get_lock():
            self.counter.value += records
            return int(self.counter.value)

    def ready(self) -> None:
        self.barrier.wait(timeout=120)


async def _others_done(progress: Progress, count: int, done: asyncio.Event) -> None:
    """Set `done` once the group has processed `count` records, when the rest of them were
    on another process's partitions."""
    while progress.add(0) < count and not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.05)
    done.set()


async def ceiling(
    bootstrap: str,
    dsn: str,
    topic: str,
    *,
    count: int,
    max_records: int,
    limit_s: float,
    roots: dict[int, str],
    progress: Progress | None = None,
) -> Phase:
    """Raw consume of `count` records and a COPY of each batch's rows, one transaction each.
    CPU is read from the first batch to the last, while the backend still lives. With
    `progress`, `count` is what all the group's processes have read together."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_ceiling "
        "(topic text, part int, off bigint, key text, value jsonb)"
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    phase = Phase()
    started: float | None = None
    deadline = time.monotonic() + limit_s
    try:
        if progress is not None:
            progress.ready()
        total = 0
        while total < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=max_records)
            rows = [
                (r.topic, r.partition, r.offset, (r.key or b"").decode(), (r.value or b"").decode())
                for rs in batch.values()
                for r in rs
            ]
            if not rows:
                total = progress.add(0) if progress is not None else phase.events
                continue
            t0 = time.perf_counter()
            if started is None:
                started, before = t0, cpu_snapshot()
            async with conn.transaction():
                await conn.copy_records_to_table("bench_ceiling", records=rows)
            phase.ended = time.perf_counter()
            phase.latencies.append(phase.ended - t0)
            phase.events += len(rows)
            for row in rows:
                phase.partitions[row[1]] = phase.partitions.get(row[1], 0) + 1
            total = progress.add(len(rows)) if progress is not None else phase.events
        phase.started = started or phase.ended
        phase.seconds = phase.ended - phase.started
        if started is not None:
            phase.cpu = cpu_delta(before, cpu_snapshot(), roots)
    finally:
        await consumer.stop()
        await conn.close()
    return phase


_HANDLER_SQL: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
    "handler_sql", default=None
)


@dataclass
class Split:
    """Seconds spent, summed over batches, in each part of the apply."""

    decode: float = 0.0
    handler: float = 0.0
    sql: float = 0.0
    sql_statements: int = 0
    sql_in_handler: float = 0.0
    statements: dict[str, list[float]] = field(default_factory=dict)
    """Seconds per statement, by its first words."""

    def around_sql(self, execute: Any) -> Any:
        async def measured(conn: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await execute(conn, statement, *args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                self.sql += spent
                self.sql_statements += 1
                if (in_handler := _HANDLER_SQL.get()) is not None:
                    in_handler[0] += spent
                words = " ".join(str(statement).split())[:60]
                self.statements.setdefault(words, []).append(spent)

        return measured

    def around_decode(self, sort_batch: Any) -> Any:
        def measured(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return sort_batch(*args, **kwargs)
            finally:
                self.decode += time.perf_counter() - t0

        return measured

    def around_handler(self, handler: Any) -> Any:
        """`handler` that also notes how much of its time was SQL."""

        async def measured(conn: Any, events: Any) -> Any:
            t0, spent = time.perf_counter(), [0.0]
            token = _HANDLER_SQL.set(spent)  # this batch's own: batches run concurrently
            try:
                return await handler(conn, events)
            finally:
                _HANDLER_SQL.reset(token)
                self.handler += time.perf_counter() - t0
                self.sql_in_handler += spent[0]

        return measured


async def worker(
    url: str,
    bootstrap: str,
    *,
    count: int,
    max_records: int,
    rss_every: int,
    limit_s: float,
    roots: dict[int, str],
    summariser: bool = False,
    progress: Progress | None = None,
) -> tuple[Phase, Split, list[RssSample], dict[str, int]]:
    """The forecast worker's consumer until it has processed `count` records. CPU is read
    from its first batch to its last, while its database backends still live. With
    `summariser`, the worker's metrics summariser runs beside it, as in the service, and
    the catch-up left when the consumer is done is timed. With `progress`, `count` is what
    all the group's worker processes have processed together."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    import shared.consumer as consumer_module
    from services.forecast_worker.deals.projection import StageRules
    from services.forecast_worker.dispatch import consumer_spec
    from services.forecast_worker.summary import summariser as summary
    from shared.consumer import StoredOffsetConsumer
    from shared.db import create_engine, create_sessionmaker
    from shared.dispatch import Record
    from shared.service import freeze_startup_objects
    from shared.settings import Settings

    settings = Settings()
    split = Split()
    base_spec = consumer_spec(StageRules.of(settings.won_stages, settings.lost_stages))
    measured = {id(h): split.around_handler(h) for h in base_spec.dispatch.values()}
    wrapped = {t: measured[id(h)] for t, h in base_spec.dispatch.items()}
    spec = type(base_spec)(**{**base_spec.__dict__, "dispatch": wrapped})
    phase = Phase()
    broker_pid = next((pid for pid, name in roots.items() if name == "broker"), None)
    rss = [RssSample.now(0, broker_pid)]
    done = asyncio.Event()
    state: dict[str, float] = {}
    snapshots: list[Snapshot] = []

    class Measured(StoredOffsetConsumer):
        async def process(self, records: Sequence[Record], *decoded: Any) -> None:
            t0 = time.perf_counter()
            if "started" not in state:
                state["started"] = t0
                snapshots.append(cpu_snapshot())
            await super().process(records, *decoded)
            state["last"] = time.perf_counter()
            phase.latencies.append(state["last"] - t0)
            before = phase.events
            phase.events += len(records)
            for record in records:
                phase.partitions[record.partition] = phase.partitions.get(record.partition, 0) + 1
            total = progress.add(len(records)) if progress is not None else phase.events
            if phase.events // rss_every > before // rss_every:
                rss.append(RssSample.now(phase.events, broker_pid))
                if available_gib() < MIN_AVAILABLE_GIB:
                    state["low_memory"] = 1.0
            if (total >= count or "low_memory" in state) and not done.is_set():
                state["ended"] = state["last"]
                phase.cpu = cpu_delta(snapshots[0], cpu_snapshot(), roots)
                done.set()

    engine = create_engine(url, application_name="bench-worker", pool_size=2)
    consumer = Measured(
        engine=engine,
        bootstrap=bootstrap,
        spec=spec,
        max_records=max_records,
        check_seconds=settings.broker_check_seconds,
    )
    # Measured by wrapping, for this run only: the code under test is left as it is.
    patched = [
        (consumer_module, "sort_batch", split.around_decode),
        (AsyncConnection, "execute", split.around_sql),
        (AsyncConnection, "exec_driver_sql", split.around_sql),
    ]
    if hasattr(consumer_module, "decode_each"):  # decoded ahead, while a batch is applied
        patched.append((consumer_module, "decode_each", split.around_decode))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, around in patched:
        setattr(owner, name, around(getattr(owner, name)))
    freeze_startup_objects()  # as every service does once it has started
    if progress is not None:
        progress.ready()
    task = asyncio.create_task(consumer.run())
    others = asyncio.create_task(_others_done(progress, count, done)) if progress else None
    summaries = create_sessionmaker(engine)
    beside = asyncio.create_task(summary.run(summaries, settings)) if summariser else None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), limit_s)
    finally:
        for running in (task, beside, others):
            if running is not None:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running
        await consumer.close()
        for owner, name, original in originals:
            setattr(owner, name, original)
    if summariser:
        t0 = time.perf_counter()
        left = await summary.summarise(summaries)
        print(
            f"summariser: the catch-up left after the consumer: {left:,} deals in "
            f"{time.perf_counter() - t0:.2f}s",
            flush=True,
        )
    end = state.get("ended", state.get("last", time.perf_counter()))
    phase.started, phase.ended = state.get("started", end), end
    phase.seconds = end - phase.started
    rss.append(RssSample.now(phase.events, broker_pid))
    if "low_memory" in state:
        print(f"stopped at {phase.events:,} events: under {MIN_AVAILABLE_GIB} GiB available")
    async with engine.connect() as conn:
        counts = {
            name: int((await conn.exec_driver_sql(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in ("forecast.deal_changes", "forecast.deal_versions", "forecast.deals")
        }
    await engine.dispose()
    return phase, split, rss, counts


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Member:
    """One process of a group: its phase, and for a worker its split, RSS and row counts."""

    pid: int
    phase: Phase
    split: Split | None = None
    rss: tuple[RssSample, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)


def _member(kind: str, progress: Progress, out: Any, kwargs: dict[str, Any]) -> None:
    """A child process: the ceiling's raw consumer or a forecast worker, in the group."""
    if kind == "ceiling":
        phase = _run(ceiling(**kwargs, progress=progress))
        out.put(Member(os.getpid(), phase))
        return
    phase, split, rss, counts = _run(worker(**kwargs, progress=progress))
    out.put(Member(os.getpid(), phase, split, tuple(rss), counts))


async def group(kind: str, processes: int, count: int, kwargs: dict[str, Any]) -> list[Member]:
    """`processes` real processes of one consumer group sharing the topic's partitions (as
    several replicas of the service would), until they have handled `count` records."""
    ctx = multiprocessing.get_context("spawn")
    progress = Progress(ctx.Value("q", 0), ctx.Barrier(processes))
    out = ctx.Queue()
    children = [
        ctx.Process(target=_member, args=(kind, progress, out, {**kwargs, "count": count}))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        members = [
            await asyncio.to_thread(out.get, True, kwargs["limit_s"] + 180) for _ in children
        ]
    finally:
        for child in children:
            await asyncio.to_thread(child.join, 30)
    return sorted(members, key=lambda m: min(m.phase.partitions, default=0))


def combined(members: Sequence[Member]) -> Phase:
    """One phase for the group: every record, from the first batch any process started to
    the last batch any process ended."""
    busy = [m.phase for m in members if m.phase.events]
    phase = Phase(events=sum(p.events for p in busy))
    if busy:
        phase.started = min(p.started for p in busy)
        phase.ended = max(p.ended for p in busy)
        phase.seconds = phase.ended - phase.started
        phase.latencies = [x for p in busy for x in p.latencies]
        phase.cpu = max((p.cpu for p in busy), key=lambda c: sum(c.values()))
    return phase


def merged(splits: Sequence[Split]) -> Split:
    total = Split()
    for s in splits:
        total.decode += s.decode
        total.handler += s.handler
        total.sql += s.sql
        total.sql_statements += s.sql_statements
        total.sql_in_handler += s.sql_in_handler
        for words, spent in s.statements.items():
            total.statements.setdefault(words, []).extend(spent)
    return total


# --------------------------------------------------------------------------- report


@dataclass
class Args:
    events: int
    max_records: int
    rss_every: int
    max_seconds: float
    wait_quiet: float
    seed: int
    profile_out: Path | None
    chunk: int
    long: bool
    summariser: bool
    workers: int
    partitions: int


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.worker", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--events", type=int, default=200_000, help="deal events (default 200000)")
    p.add_argument(
        "--max-records", type=int, default=500, help="records per batch (the worker's default)"
    )
    p.add_argument("--rss-every", type=int, default=50_000, help="sample RSS every N events")
    p.add_argument("--max-seconds", type=float, default=900.0, help="time bound per phase")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other processes to go quiet before starting",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--chunk",
        type=int,
        default=200_000,
        help="events generated and produced at a time, each chunk its own deals",
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="a long run for RSS: no ceiling, events produced chunk by chunk while the "
        "worker consumes, so the benchmark never holds more than a chunk",
    )
    p.add_argument(
        "--profile-out",
        type=Path,
        help="cProfile the worker phase into this file (slows it: figures are not comparable)",
    )
    p.add_argument(
        "--summariser",
        action="store_true",
        help="run the worker's metrics summariser beside the consumer, as the service does",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes in one consumer group sharing the deal topic's partitions "
        "(and as many raw consumers for the ceiling); 1 runs the worker in this process",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=3,
        help="partitions of each data topic (the relay's SALESOPS_TOPIC_PARTITIONS, default 3): "
        "the worker processes of a group can split no finer",
    )
    a = p.parse_args(argv)
    if min(a.events, a.max_records, a.rss_every, a.chunk, a.workers, a.partitions) < 1:
        p.error("--events, --max-records, --rss-every, --chunk and --workers must be positive")
    if a.workers > 1 and (a.long or a.profile_out or a.summariser):
        p.error("--workers > 1 does not combine with --long, --profile-out or --summariser")
    return Args(
        a.events,
        a.max_records,
        a.rss_every,
        a.max_seconds,
        a.wait_quiet,
        a.seed,
        a.profile_out,
        a.chunk,
        a.long,
        a.summariser,
        a.workers,
        a.partitions,
    )


def fmt_cpu(cpu: dict[str, float], seconds: float) -> str:
    if seconds <= 0:
        return "-"
    mine = [f"{k} {v:.1f}s ({v / seconds * 100:.0f}%)" for k, v in cpu.items() if ":" not in k]
    other = sum(v for k, v in cpu.items() if k.startswith("other:"))
    mine.append(f"other processes {other:.1f}s ({other / seconds * 100:.0f}%)")
    return "; ".join(mine) + f"  (wall {seconds:.1f}s; 100% = one core)"


def report(
    args: Args, res: dict[str, Any], infra: list[str], command: str, load: tuple[float, str]
) -> None:
    raw: Phase = res["ceiling"]
    work: Phase = res["worker"]
    split: Split = res["split"]
    ratio = work.rate / raw.rate if raw.rate else float("nan")
    batches = len(work.latencies) or 1
    print()
    print("== salesops worker apply benchmark ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    for line in infra:
        print(line)
    print(f"{'background load:':<22}{load[0]:.0f}% of one core before the run ({load[1]})")
    print(
        f"workload: {args.events:,} deal events over {res['deals']:,} deals "
        f"({res['duplicates']:,} exact redeliveries), produced in {res['produce_s']:.1f}s "
        f"onto {args.partitions} partitions; batches of <= {args.max_records}"
    )
    print()
    total = sum(work.latencies)
    other = total - split.decode - split.handler - split.sql + split.sql_in_handler
    rows = [
        ("events/s worker (StoredOffsetConsumer, real spec)", f"{work.rate:,.0f}", ""),
        (
            "events/s ceiling (raw consume + COPY)",
            f"{raw.rate:,.0f}",
            f"{raw.events:,} records in {raw.seconds:.1f}s",
        ),
        ("ratio worker / ceiling", f"{ratio:.3f}", ""),
        (
            "worker vs target events/s",
            f"{work.rate / TARGET_EVENTS_PER_S:.2f}",
            f"target >= {TARGET_EVENTS_PER_S:,}: "
            f"{'PASS' if work.rate >= TARGET_EVENTS_PER_S else 'MISS'}",
        ),
        ("worker batch p50 / p95 / p99 ms", _pcts(work), f"{batches} batches"),
        ("ceiling batch p50 / p95 / p99 ms", _pcts(raw), "COPY + commit"),
        (
            "time in decode (JSON + validate)",
            _share(split.decode, total),
            "overlaps SQL where decoded ahead",
        ),
        (
            "time in handler, outside SQL",
            _share(split.handler - split.sql_in_handler, total),
            "changes, fold, row building",
        ),
        (
            "time in SQL (execute)",
            _share(split.sql, total),
            f"{split.sql_statements / batches:.1f} statements per batch",
        ),
        (
            "time elsewhere",
            _share(other, total),
            "begin/commit, offsets, loop; batches in flight at once overlap",
        ),
        (
            "worker RSS MiB start / end",
            f"{res['rss'][0].worker_mib:.0f} / {res['rss'][-1].worker_mib:.0f}",
            " ".join(f"{r.events // 1000}k:{r.worker_mib:.0f}" for r in res["rss"]),
        ),
        (
            "broker (Tansu) RSS MiB start / end",
            f"{res['rss'][0].broker_mib:.0f} / {res['rss'][-1].broker_mib:.0f}",
            "keeps every record in memory",
        ),
        (
            "rows: changes / versions / deals",
            " / ".join(f"{v:,}" for v in res["counts"].values()),
            "",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"| {'metric':<{w0}} | {'value':>{w1}} | note")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|------")
    for name, value, note in rows:
        print(f"| {name:<{w0}} | {value:>{w1}} | {note}")
    print()
    print("slowest statements (total s, calls, mean ms):")
    ranked = sorted(split.statements.items(), key=lambda kv: -sum(kv[1]))
    for words, spent in ranked[:8]:
        print(
            f"  {sum(spent):6.2f}s {len(spent):6d} {sum(spent) / len(spent) * 1000:7.2f}  {words}"
        )
    print(f"cpu during ceiling: {fmt_cpu(raw.cpu, raw.seconds)}")
    print(f"cpu during worker:  {fmt_cpu(work.cpu, work.seconds)}")
    for kind, members in res.get("members", {}).items():
        print(f"{kind} processes (one consumer group; RSS summed above for the workers):")
        for m in members:
            parts = ", ".join(f"p{p}:{n:,}" for p, n in sorted(m.phase.partitions.items()))
            samples = " ".join(f"{r.events // 1000}k:{r.worker_mib:.0f}" for r in m.rss)
            rss = f"; RSS MiB {samples}" if m.rss else ""
            print(
                f"  pid {m.pid}: {m.phase.events:,} records ({parts}) in "
                f"{m.phase.seconds:.2f}s = {m.phase.rate:,.0f}/s{rss}"
            )


def _pcts(phase: Phase) -> str:
    return f"{phase.pct(50):.1f} / {phase.pct(95):.1f} / {phase.pct(99):.1f}"


def _share(seconds: float, total: float) -> str:
    return f"{seconds:.1f}s ({seconds / total * 100:.0f}%)" if total else "-"


async def measure(args: Args, url: str, bootstrap: str, roots: dict[int, str]) -> dict[str, Any]:
    from shared import topics
    from shared.kafka import ensure_topics, make_admin

    admin = make_admin(bootstrap, client_id="bench-worker-admin")
    await admin.start()
    try:
        await ensure_topics(admin, topics.all_topics(args.partitions))
    finally:
        await admin.close()
    # In a child process, so that this process's RSS is the worker's own.
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    produced = asyncio.get_running_loop().run_in_executor(
        pool, produce_events, bootstrap, args.events, args.seed, args.chunk
    )
    res: dict[str, Any] = {}
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg = await postmaster_pid(dsn)
    if pg:
        roots[pg] = "postgres"
    if args.workers > 1:
        res["deals"], res["duplicates"], res["produce_s"] = await produced
        pool.shutdown()
        res.update(await measure_group(args, url, dsn, bootstrap, roots))
        return res
    if not args.long:
        res["deals"], res["duplicates"], res["produce_s"] = await produced
        res["ceiling"] = await ceiling(
            bootstrap,
            dsn,
            topics.DEAL,
            count=args.events,
            max_records=args.max_records,
            limit_s=args.max_seconds,
            roots=roots,
        )
    profile = cProfile.Profile() if args.profile_out else None
    if profile:
        profile.enable()
    work, split, rss, counts = await worker(
        url,
        bootstrap,
        count=args.events,
        max_records=args.max_records,
        rss_every=args.rss_every,
        limit_s=args.max_seconds,
        roots=roots,
        summariser=args.summariser,
    )
    if profile and args.profile_out:
        profile.disable()
        profile.dump_stats(args.profile_out)
    if args.long:
        res["deals"], res["duplicates"], res["produce_s"] = await produced
        res["ceiling"] = Phase()
    pool.shutdown()
    res.update(worker=work, split=split, rss=rss, counts=counts)
    return res


async def measure_group(
    args: Args, url: str, dsn: str, bootstrap: str, roots: dict[int, str]
) -> dict[str, Any]:
    """Ceiling and worker each as `args.workers` processes of one consumer group."""
    from shared import topics

    conn = await asyncpg.connect(dsn)  # created once: concurrent CREATEs of it can collide
    await conn.execute(
        "CREATE TABLE bench_ceiling (topic text, part int, off bigint, key text, value jsonb)"
    )
    await conn.close()
    common = {"count": args.events, "limit_s": args.max_seconds, "roots": roots}
    raw = await group(
        "ceiling",
        args.workers,
        args.events,
        {**common, "bootstrap": bootstrap, "dsn": dsn, "topic": topics.DEAL}
        | {"max_records": args.max_records},
    )
    work = await group(
        "worker",
        args.workers,
        args.events,
        {**common, "url": url, "bootstrap": bootstrap}
        | {"max_records": args.max_records, "rss_every": args.rss_every},
    )
    rss = [RssSample(0, sum(m.rss[0].worker_mib for m in work), work[0].rss[0].broker_mib)]
    rss.append(
        RssSample(
            sum(m.phase.events for m in work),
            sum(m.rss[-1].worker_mib for m in work),
            max(m.rss[-1].broker_mib for m in work),
        )
    )
    return {
        "ceiling": combined(raw),
        "worker": combined(work),
        "split": merged([m.split for m in work if m.split is not None]),
        "rss": rss,
        "counts": max((m.counts for m in work), key=lambda c: sum(c.values())),
        "members": {"ceiling": raw, "worker": work},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.worker " + shlex.join(sys.argv[1:] if argv is None else argv)
    from services.cli import run_migrations

    load = wait_quiet(args.wait_quiet)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salesops-bench-")))
        started = time.perf_counter()
        url, db_desc = stack.enter_context(database(tmp))
        bootstrap, broker_desc, broker_pid = stack.enter_context(broker(tmp))
        run_migrations(url)
        infra = [
            f"{'database:':<22}{db_desc}",
            f"{'broker:':<22}{broker_desc} at {bootstrap}",
            f"{'worker:':<22}"
            + (
                f"{args.workers} processes in one consumer group, uvloop"
                if args.workers > 1
                else f"in this process (pid {os.getpid()}), uvloop"
            ),
        ]
        roots = {os.getpid(): "worker+bench"}
        if broker_pid:
            roots[broker_pid] = "broker"
        res = _run(measure(args, url, bootstrap, roots))
        report(args, res, infra, command, load)
        print(f"total run time: {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
