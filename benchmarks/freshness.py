"""Freshness benchmark: how long after its `POST /v1/events` a deal change shows in the roll-up.

    .venv/bin/python -m benchmarks.freshness [--rate 2000] [--samples 300] [--wait-quiet S]
        [--layout services|one]

What it does, in one run:

1. Infra: embedded PostgreSQL and Tansu as `benchmarks.intake` (or the servers
   SALESOPS_DATABASE_URL / SALESOPS_KAFKA_BOOTSTRAP_SERVERS name), schema migrated; the
   stack under uvicorn with its default settings, laid out as `--layout` says:
   `services` (the default) as production runs it (`salesops serve`, docker-compose.yml,
   deploy/k8s): pipeline_api (intake and relay) and forecast_worker (consumer and read
   API) each in a process of its own (`benchmarks.server`); `one`: every service in one
   process, as `salesops dev` composes it (`benchmarks.stack_server`).
2. Background: deal events posted at a steady `--rate` per second (batches of `--batch`
   every batch/rate seconds): new deals and amount, stage and close-date changes of them,
   all closing in 2027, so they never enter the measured roll-up.
3. Markers: a few deals closing in the measured period (2026-Q4), alone in its roll-up.
   One at a time, a marker's amount is changed by a POST of one deal.updated; from its
   2xx, `GET /v1/forecast/rollup?period=2026-Q4&group_by=rep` is polled every `--poll-ms`
   until the period's total (every category, unmapped stages included) equals the sum of
   the markers' amounts as now posted. The latency is the time from the POST's answer to
   the answer of the first roll-up that shows the change (so it includes one roll-up
   query, and up to one poll interval).

Prints p50/p95/p99/max of the latency against the 1 s p99 target, the background rate
achieved, and how far behind the worker was at the end. The exit code is 0 whether or not
the target is met (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

from benchmarks.intake import (
    API_KEY,
    _run,
    api_server,
    broker,
    cpu_delta,
    cpu_snapshot,
    database,
    machine,
    percentile,
    postmaster_pid,
    wait_quiet,
)
from benchmarks.worker import fmt_cpu

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
SOURCE = "app://bench-freshness"
PERIOD = "2026-Q4"
MARKER_CLOSE = "2026-12-15"
TARGET_P99_S = 1.0
LAYOUTS = ("services", "one")
CATEGORIES = ("closed_won", "commit", "best_case", "pipeline", "omitted", "unmapped")


def _event(type_: str, deal_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": SOURCE,
        "type": type_,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": deal_id,
        "data": {"deal_id": deal_id, **data},
    }


def _created(deal_id: str, amount: str, close_date: str) -> dict[str, Any]:
    return _event(
        CREATED,
        deal_id,
        {
            "name": deal_id,
            "owner_id": "rep-bench",
            "amount": amount,
            "currency": "USD",
            "stage": "Prospecting",
            "close_date": close_date,
        },
    )


@dataclass
class Background:
    """Deal events at a steady rate; the deals close in 2027, outside the measured period."""

    rate: float
    batch: int
    rng: random.Random
    posted: int = 0
    errors: list[str] = field(default_factory=list)
    deals: int = 0
    seconds: float = 0.0

    def next_batch(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(self.batch):
            if self.deals < 100 or self.rng.random() < 0.15:
                self.deals += 1
                deal = f"bg-{self.deals}"
                out.append(_created(deal, f"{self.rng.randrange(1000, 90000)}.00", "2027-02-15"))
                continue
            deal = f"bg-{self.rng.randrange(1, self.deals + 1)}"
            change = self.rng.choice(
                [
                    {"amount": f"{self.rng.randrange(1000, 90000)}.{self.rng.randrange(100):02d}"},
                    {"stage": self.rng.choice(["Prospecting", "Engaging", "Qualified"])},
                    {"close_date": f"2027-0{self.rng.randrange(1, 4)}-1{self.rng.randrange(10)}"},
                ]
            )
            out.append(_event(UPDATED, deal, change))
        return out

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Post a batch every batch/rate seconds, on a fixed schedule (a slow answer is
        caught up, not skipped), until `stop`."""
        period = self.batch / self.rate
        started = time.perf_counter()
        due = started
        while not stop.is_set():
            body = orjson.dumps(self.next_batch())
            response = await client.post(
                "/v1/events", content=body, headers={"content-type": "application/json"}
            )
            if response.status_code == 202:
                self.posted += response.json()["accepted"]
            elif len(self.errors) < 3:
                self.errors.append(f"{response.status_code} {response.text[:200]}")
            due += period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.perf_counter()))
        self.seconds = time.perf_counter() - started


async def period_total(client: httpx.AsyncClient) -> Decimal:
    response = await client.get("/v1/forecast/rollup", params={"period": PERIOD, "group_by": "rep"})
    response.raise_for_status()
    return sum(
        (Decimal(str(row[c])) for row in response.json()["rows"] for c in CATEGORIES),
        Decimal(0),
    )


async def post_one(client: httpx.AsyncClient, event: dict[str, Any]) -> datetime:
    """POST one event; the wall-clock instant of its 2xx."""
    response = await client.post(
        "/v1/events", content=orjson.dumps([event]), headers={"content-type": "application/json"}
    )
    if response.status_code != 202 or response.json()["accepted"] != 1:
        raise RuntimeError(f"marker refused: {response.status_code} {response.text[:300]}")
    return datetime.now(UTC)


async def until_total(
    client: httpx.AsyncClient,
    expected: Decimal,
    *,
    poll_s: float,
    limit_s: float,
    answers: list[float] | None = None,
) -> tuple[float, int]:
    """Seconds from now until a roll-up answers `expected` (raises after `limit_s`), and
    how many roll-ups were asked; each roll-up's answer time is added to `answers`."""
    started = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        asked = time.perf_counter()
        total = await period_total(client)
        if answers is not None:
            answers.append(time.perf_counter() - asked)
        if total == expected:
            return time.perf_counter() - started, polls
        if time.perf_counter() - started > limit_s:
            raise RuntimeError(f"the roll-up did not reach {expected} within {limit_s} s")
        await asyncio.sleep(poll_s)


@dataclass
class Args:
    rate: float
    batch: int
    samples: int
    markers: int
    poll_ms: float
    warmup_s: float
    wait_quiet: float
    seed: int
    layout: str


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.freshness", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--rate", type=float, default=2000.0, help="background deal events/s")
    p.add_argument("--batch", type=int, default=50, help="background events per POST")
    p.add_argument("--samples", type=int, default=300, help="marked changes measured")
    p.add_argument("--markers", type=int, default=5, help="marker deals in the period")
    p.add_argument("--poll-ms", type=float, default=10.0, help="roll-up poll interval")
    p.add_argument("--warmup-s", type=float, default=5.0, help="background load before measuring")
    p.add_argument("--wait-quiet", type=float, default=0.0, help="wait for a quiet machine")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="services",
        help="services: a process per service, as deployed; one: all in one, as `salesops dev`",
    )
    a = p.parse_args(argv)
    if a.rate <= 0 or a.batch < 1 or a.samples < 1 or a.markers < 1 or a.poll_ms <= 0:
        p.error("--rate, --batch, --samples, --markers and --poll-ms must be positive")
    return Args(
        a.rate,
        a.batch,
        a.samples,
        a.markers,
        a.poll_ms,
        a.warmup_s,
        a.wait_quiet,
        a.seed,
        a.layout,
    )


async def measure(
    args: Args, intake: str, reads: str, dsn: str, roots: dict[int, str]
) -> dict[str, Any]:
    """Run the load and the markers against the intake base URL `intake`, polling the
    roll-up at `reads` (the same URL when one process serves everything)."""
    rng = random.Random(args.seed)
    if (pg := await postmaster_pid(dsn)) is not None:
        roots[pg] = "postgres"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=intake, headers=headers, timeout=30) as markers_client,
        httpx.AsyncClient(base_url=reads, headers=headers, timeout=30) as reader,
        httpx.AsyncClient(base_url=intake, headers=headers, timeout=30) as background_client,
    ):
        amounts = {f"marker-{i}": Decimal(1000 + i) for i in range(args.markers)}
        for deal, amount in amounts.items():
            await post_one(markers_client, _created(deal, f"{amount}.00", MARKER_CLOSE))
        poll_s = args.poll_ms / 1000
        await until_total(reader, sum(amounts.values(), Decimal(0)), poll_s=0.2, limit_s=60)

        background = Background(args.rate, args.batch, rng)
        stop = asyncio.Event()
        load = asyncio.create_task(background.run(background_client, stop))
        await asyncio.sleep(args.warmup_s)
        latencies: list[float] = []
        rollups: list[float] = []
        answered: dict[str, datetime] = {}
        polls = 0
        before = cpu_snapshot()
        started = time.perf_counter()
        try:
            for n in range(args.samples):
                deal = f"marker-{n % args.markers}"
                amounts[deal] = Decimal(2000 + n) + Decimal("0.01") * (n % 100)
                marker = _event(UPDATED, deal, {"amount": str(amounts[deal])})
                answered[marker["id"]] = await post_one(markers_client, marker)
                seconds, asked = await until_total(
                    reader,
                    sum(amounts.values(), Decimal(0)),
                    poll_s=poll_s,
                    limit_s=60,
                    answers=rollups,
                )
                latencies.append(seconds)
                polls += asked
                if load.done():
                    load.result()  # the background load died: say why
        finally:
            stop.set()
            await load
        wall = time.perf_counter() - started
        cpu = cpu_delta(before, cpu_snapshot(), roots)
    conn = await asyncpg.connect(dsn)
    try:
        applied = await conn.fetchval(
            "SELECT count(*) FROM forecast.deal_changes WHERE source = $1", SOURCE
        )
        stages = await conn.fetch(
            "SELECT e.event_id, e.published_at, c.applied_at FROM pipeline.events e "
            "JOIN forecast.deal_changes c USING (source, event_id) "
            "WHERE e.source = $1 AND e.event_id = ANY($2::text[])",
            SOURCE,
            list(answered),
        )
    finally:
        await conn.close()
    relay = [(r["published_at"] - answered[r["event_id"]]).total_seconds() for r in stages]
    worker = [(r["applied_at"] - r["published_at"]).total_seconds() for r in stages]
    return {
        "latencies": latencies,
        "rollups": rollups,
        "polls": polls,
        "background": background,
        "applied": int(applied),
        "markers_posted": args.markers + args.samples,
        "wall": wall,
        "cpu": cpu,
        "relay": relay,
        "worker": worker,
    }


def report(args: Args, res: dict[str, Any], infra: list[str], command: str) -> None:
    lat = sorted(res["latencies"])
    bg: Background = res["background"]
    p99 = percentile(lat, 99)
    print()
    print("== salesops freshness benchmark (POST /v1/events -> roll-up) ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    for line in infra:
        print(line)
    print(
        f"workload: {len(lat)} marked amount changes, one at a time, roll-up polled every "
        f"{args.poll_ms:g} ms ({res['polls']} polls); background {bg.posted:,} deal events "
        f"over {bg.deals:,} deals in {bg.seconds:.1f}s = {bg.posted / bg.seconds:,.0f} ev/s "
        f"(asked {args.rate:,.0f}, batches of {args.batch})"
    )
    behind = bg.posted + res["markers_posted"] - res["applied"]
    print(f"worker behind at the end: {behind:,} events posted and not yet applied")
    if bg.errors:
        print(f"background errors: {bg.errors}")
    print()
    print("| metric | value |")
    print("|---|---|")
    for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        print(f"| POST 2xx -> roll-up {name} ms | {percentile(lat, p) * 1000:.0f} |")
    for name, key in (
        ("POST 2xx -> relay marked it published", "relay"),
        ("published -> worker transaction began", "worker"),
        ("one roll-up answer (request to response)", "rollups"),
    ):
        part = sorted(res[key])
        print(
            f"| {name}, p50 / p99 ms | "
            f"{percentile(part, 50) * 1000:.0f} / {percentile(part, 99) * 1000:.0f} |"
        )
    verdict = "PASS" if p99 <= TARGET_P99_S else "MISS"
    print(f"| p99 / target (1 s) | {p99 / TARGET_P99_S:.2f} ({verdict}) |")
    print(f"cpu while measuring: {fmt_cpu(res['cpu'], res['wall'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.freshness " + shlex.join(sys.argv[1:] if argv is None else argv)
    from services.cli import run_migrations

    load, busiest = wait_quiet(args.wait_quiet)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salesops-fresh-")))
        started = time.perf_counter()
        url, db_desc = stack.enter_context(database(tmp))
        bootstrap, broker_desc, broker_pid = stack.enter_context(broker(tmp))
        run_migrations(url)
        if args.layout == "one":
            base, pid = stack.enter_context(
                api_server(url, bootstrap, tmp, factory="benchmarks.stack_server:create_app")
            )
            intake, reads = base, base
            roots = {pid: "stack"}
            layout = f"every service in one uvicorn process, pid {pid}, at {base}"
        else:
            intake, api_pid = stack.enter_context(
                api_server(url, bootstrap, tmp, log_name="pipeline_api.log")
            )
            reads, worker_pid = stack.enter_context(
                api_server(
                    url,
                    bootstrap,
                    tmp,
                    factory="benchmarks.server:create_forecast_worker",
                    log_name="forecast_worker.log",
                )
            )
            roots = {api_pid: "pipeline_api", worker_pid: "forecast_worker"}
            layout = (
                f"a uvicorn process per service: pipeline_api pid {api_pid} at {intake}, "
                f"forecast_worker pid {worker_pid} at {reads}"
            )
        infra = [
            f"{'database:':<22}{db_desc}",
            f"{'broker:':<22}{broker_desc} at {bootstrap}",
            f"{'stack:':<22}{layout}",
            f"{'background load:':<22}{load:.0f}% of one core before the run ({busiest})",
        ]
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        roots[os.getpid()] = "load generator"
        if broker_pid:
            roots[broker_pid] = "broker"
        res = _run(measure(args, intake, reads, dsn, roots))
        report(args, res, infra, command)
        print(f"total run time: {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
