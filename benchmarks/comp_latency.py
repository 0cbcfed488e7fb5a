"""Commission latency benchmark: how long after its `POST /v1/events` a won deal's line is
readable in `GET /v1/comp/ledger` (issue 9: p99 < 2 s), under a steady stream of won deals.

    .venv/bin/python -m benchmarks.comp_latency [--rate 1] [--seconds 60] [--reps 200]
        [--deals-per-rep 30] [--poll-ms 25] [--follow db|api] [--wait-quiet S]

What it does, in one run:

1. Infra: PostgreSQL and the broker as `benchmarks.intake` finds or starts them, schema
   migrated; the stack as deployed, a process per service: pipeline_api (intake and relay,
   `benchmarks.server:create_app`) and comp_engine (consumer, recalculation and comp API,
   `services.comp_engine.app:create_app`, the factory `salesops serve` uses).
2. Seed: one quarterly plan with marginal tiers on the period's amount, `--reps` reps
   assigned to it, `--deals-per-rep` won deals each through `POST /v1/events`; waits until
   the ledger holds a line per deal and no rep is dirty.
3. Stream: new won deals of random reps at `--rate` per second for `--seconds`, one per
   POST, on a fixed schedule. One reader follows the ledger by line id every `--poll-ms`
   (`--follow db`: the committed rows, the default; `api`: `GET /v1/comp/ledger`, whose
   reads then share the comp engine's CPU); a deal's latency is from its POST's 2xx to
   the answer that first lists its line.

The ceiling, measured in the same run on the same deals: from the POST's 2xx to the start
of the comp consumer's transaction that stored the deal (`comp.deal_changes.applied_at`),
the part of the path that is not the recalculation. Prints p50/p95/p99/max of both, the
ratio of the two p99s, and p99 against the 2 s target. Exit code 0 either way.
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
from dataclasses import dataclass
from datetime import UTC, datetime
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
SOURCE = "app://bench-comp-latency"
TARGET_P99_S = 2.0
PLAN = {
    "name": "AE tiers",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "20000",
    "components": [
        {
            "id": "new-business",
            "rate_table": {
                "basis": "period_amount",
                "mode": "marginal",
                "tiers": [
                    {"from": "0", "to": "200000", "rate": "8"},
                    {"from": "200000", "to": "400000", "rate": "10"},
                    {"from": "400000", "rate": "12"},
                ],
            },
        }
    ],
    "clawback": {"window_days": 90, "triggers": ["lost"]},
}


@dataclass
class Args:
    rate: float
    seconds: float
    reps: int
    deals_per_rep: int
    poll_ms: float
    wait_quiet: float
    seed: int
    follow: str


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.comp_latency", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--rate", type=float, default=1.0, help="won deals per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the stream lasts")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--deals-per-rep", type=int, default=30, help="won deals seeded per rep")
    p.add_argument("--poll-ms", type=float, default=25.0, help="ledger follow interval")
    p.add_argument("--wait-quiet", type=float, default=0.0, help="wait for a quiet machine")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--follow",
        choices=("db", "api"),
        default="db",
        help="read new lines from comp.ledger_lines (db) or GET /v1/comp/ledger (api)",
    )
    a = p.parse_args(argv)
    if a.rate <= 0 or a.seconds <= 0 or a.reps < 1 or a.deals_per_rep < 0 or a.poll_ms <= 0:
        p.error("--rate, --seconds, --reps and --poll-ms must be positive")
    return Args(
        a.rate, a.seconds, a.reps, a.deals_per_rep, a.poll_ms, a.wait_quiet, a.seed, a.follow
    )


def won(deal_id: str, rep: str, amount: int, close: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": SOURCE,
        "type": CREATED,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": deal_id,
        "data": {
            "deal_id": deal_id,
            "name": deal_id,
            "owner_id": rep,
            "amount": f"{amount}.00",
            "currency": "USD",
            "stage": "closedwon",
            "close_date": close,
        },
    }


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    response = await client.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )
    if response.status_code not in (201, 202):
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return response


async def settled(dsn: str, lines: int, limit_s: float) -> float:
    """Seconds until the ledger holds `lines` lines and no rep is dirty."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            held = await conn.fetchval("SELECT count(*) FROM comp.ledger_lines")
            dirty = await conn.fetchval("SELECT count(*) FROM comp.dirty_reps")
            if held >= lines and dirty == 0:
                return time.perf_counter() - started
            if time.perf_counter() - started > limit_s:
                raise RuntimeError(f"seed not settled in {limit_s} s: {held} lines, {dirty} dirty")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def seed(args: Args, intake: httpx.AsyncClient, comp: httpx.AsyncClient) -> int:
    """The plan, the assignments and the won deals; how many deals were posted."""
    await post(
        comp, "/v1/comp/plans/bench/versions", {"effective_from": "2026-01-01", "document": PLAN}
    )
    for n in range(args.reps):
        body = {"rep_id": f"rep-{n}", "plan_id": "bench", "start": "2026-01-01"}
        await post(comp, "/v1/comp/assignments", body)
    rng = random.Random(args.seed)
    events = [
        won(
            f"seed-{n}-{i}",
            f"rep-{n}",
            rng.randrange(2000, 40000),
            f"2026-{rng.randrange(1, 12):02d}-1{rng.randrange(10)}",
        )
        for n in range(args.reps)
        for i in range(args.deals_per_rep)
    ]
    for start in range(0, len(events), 500):
        await post(intake, "/v1/events", events[start : start + 500])
    return len(events)


class Follower:
    """Reads the new ledger lines every `poll_s`; when each deal's line first showed.

    `api`: `GET /v1/comp/ledger?after_id=` of the comp engine, as a BI client follows
    it. `db`: the same query straight on `comp.ledger_lines` (a committed line is what
    the API answers): the reads then cost the comp engine's process nothing, which
    matters on a machine where that process gets a fraction of a core."""

    def __init__(self, client: httpx.AsyncClient, dsn: str, after: int, poll_s: float) -> None:
        self.client, self.dsn, self.after, self.poll_s = client, dsn, after, poll_s
        self.seen: dict[str, float] = {}
        self.reads: list[float] = []

    async def run(self, stop: asyncio.Event, via: str) -> None:
        conn = await asyncpg.connect(self.dsn) if via == "db" else None
        try:
            while not stop.is_set():
                asked = time.perf_counter()
                lines = await self._read(conn)
                answered = time.perf_counter()
                self.reads.append(answered - asked)
                for line_id, deal_id in lines:
                    self.after = max(self.after, line_id)
                    if deal_id:
                        self.seen.setdefault(deal_id, answered)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)
        finally:
            if conn is not None:
                await conn.close()

    async def _read(self, conn: asyncpg.Connection | None) -> list[tuple[int, str | None]]:
        if conn is not None:
            rows = await conn.fetch(
                "SELECT id, deal_id FROM comp.ledger_lines WHERE id > $1 ORDER BY id", self.after
            )
            return [(int(r["id"]), r["deal_id"]) for r in rows]
        response = await self.client.get(
            "/v1/comp/ledger", params={"after_id": self.after, "limit": 10_000}
        )
        response.raise_for_status()
        return [(int(x["id"]), x["deal_id"]) for x in response.json()["items"]]


async def measure(
    args: Args, intake_url: str, comp_url: str, dsn: str, roots: dict[int, str]
) -> dict[str, Any]:
    if (pg := await postmaster_pid(dsn)) is not None:
        roots[pg] = "postgres"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=intake_url, headers=headers, timeout=60) as intake,
        httpx.AsyncClient(base_url=comp_url, headers=headers, timeout=60) as comp,
        httpx.AsyncClient(base_url=comp_url, headers=headers, timeout=60) as reader,
    ):
        seeded_at = time.perf_counter()
        deals = await seed(args, intake, comp)
        seed_s = await settled(dsn, deals, limit_s=1800) + (time.perf_counter() - seeded_at)
        conn = await asyncpg.connect(dsn)
        try:
            last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM comp.ledger_lines")
        finally:
            await conn.close()

        follower = Follower(reader, dsn, int(last), args.poll_ms / 1000)
        stop = asyncio.Event()
        following = asyncio.create_task(follower.run(stop, args.follow))
        rng = random.Random(args.seed + 1)
        posted: dict[str, tuple[float, datetime, str]] = {}
        count = max(1, round(args.rate * args.seconds))
        before = cpu_snapshot()
        started = time.perf_counter()
        try:
            for n in range(count):
                due = started + n / args.rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                event = won(
                    f"live-{n}",
                    f"rep-{rng.randrange(args.reps)}",
                    rng.randrange(2000, 40000),
                    "2026-11-20",
                )
                await post(intake, "/v1/events", [event])
                posted[f"live-{n}"] = (time.perf_counter(), datetime.now(UTC), event["id"])
            stream_s = time.perf_counter() - started
            deadline = time.perf_counter() + 120
            while (
                len(set(posted) & set(follower.seen)) < len(posted)
                and time.perf_counter() < deadline
            ):
                if following.done():
                    following.result()
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await following
        wall = time.perf_counter() - started
        cpu = cpu_delta(before, cpu_snapshot(), roots)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT deal_id, applied_at FROM comp.deal_changes "
            "WHERE source = $1 AND deal_id LIKE 'live-%'",
            SOURCE,
        )
    finally:
        await conn.close()
    applied = {r["deal_id"]: r["applied_at"] for r in rows}
    latencies = [follower.seen[d] - at for d, (at, _, _) in posted.items() if d in follower.seen]
    ceiling = [
        (applied[d] - wall_at).total_seconds()
        for d, (_, wall_at, _) in posted.items()
        if d in applied
    ]
    return {
        "deals": deals,
        "seed_s": seed_s,
        "posted": len(posted),
        "stream_s": stream_s,
        "missing": len(posted) - len(latencies),
        "latencies": sorted(latencies),
        "ceiling": sorted(ceiling),
        "reads": sorted(follower.reads),
        "wall": wall,
        "cpu": cpu,
    }


def report(args: Args, res: dict[str, Any], infra: list[str], command: str) -> None:
    lat, ceil = res["latencies"], res["ceiling"]
    print()
    print("== salesops comp latency benchmark (POST /v1/events won deal -> ledger line) ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    print(f"load:     {Path('/proc/loadavg').read_text().strip()}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    for line in infra:
        print(line)
    print(
        f"seed:     {args.reps} reps x {args.deals_per_rep} won deals = {res['deals']:,} lines, "
        f"settled in {res['seed_s']:.1f}s"
    )
    print(
        f"stream:   {res['posted']} won deals in {res['stream_s']:.1f}s "
        f"({res['posted'] / res['stream_s']:.2f}/s, asked {args.rate:g}/s); "
        f"ledger followed ({args.follow}) every {args.poll_ms:g} ms; "
        f"lines never seen within 120 s: {res['missing']}"
    )
    print()
    print("| metric | p50 | p95 | p99 | max |")
    print("|---|---|---|---|---|")
    for name, values in (
        ("POST 2xx -> ledger line readable, s", lat),
        ("ceiling: POST 2xx -> comp consumer stored it, s", ceil),
        (f"one ledger read ({args.follow}, request to response), s", res["reads"]),
    ):
        cells = " | ".join(
            f"{percentile(values, p):.3f}" if values else "-" for p in (50, 95, 99, 100)
        )
        print(f"| {name} | {cells} |")
    if lat and ceil:
        p99, c99 = percentile(lat, 99), percentile(ceil, 99)
        verdict = "PASS" if p99 <= TARGET_P99_S and not res["missing"] else "MISS"
        print(f"| p99 / ceiling p99 | {p99 / c99 if c99 > 0 else float('inf'):.2f} | | | |")
        print(f"| p99 / target (2 s) | {p99 / TARGET_P99_S:.2f} ({verdict}) | | | |")
    print(f"cpu while streaming: {fmt_cpu(res['cpu'], res['wall'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.comp_latency " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    from services.cli import run_migrations

    load, busiest = wait_quiet(args.wait_quiet)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salesops-comp-lat-")))
        started = time.perf_counter()
        url, db_desc = stack.enter_context(database(tmp))
        bootstrap, broker_desc, broker_pid = stack.enter_context(broker(tmp))
        run_migrations(url)
        intake_url, api_pid = stack.enter_context(
            api_server(url, bootstrap, tmp, log_name="pipeline_api.log")
        )
        comp_url, comp_pid = stack.enter_context(
            api_server(
                url,
                bootstrap,
                tmp,
                factory="services.comp_engine.app:create_app",
                log_name="comp_engine.log",
            )
        )
        roots = {api_pid: "pipeline_api", comp_pid: "comp_engine", os.getpid(): "load generator"}
        if broker_pid:
            roots[broker_pid] = "broker"
        infra = [
            f"{'database:':<22}{db_desc}",
            f"{'broker:':<22}{broker_desc} at {bootstrap}",
            f"{'stack:':<22}pipeline_api pid {api_pid} at {intake_url}, "
            f"comp_engine pid {comp_pid} at {comp_url}",
            f"{'background load:':<22}{load:.0f}% of one core before the run ({busiest})",
        ]
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        res = _run(measure(args, intake_url, comp_url, dsn, roots))
        report(args, res, infra, command)
        print(f"total run time: {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
