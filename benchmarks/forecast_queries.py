"""Forecast read benchmark: roll-up (live and as_of), waterfall and metrics at scale, each
through the forecast worker's real routes, against a hand-written SQL ceiling.

    .venv/bin/python -m benchmarks.forecast_queries [--scale 1.0] [--keep-dir DIR]
        [--repeats 30] [--wait-quiet S] [--snapshot] [--inspection]

What it does, in one run:

1. Database: embedded PostgreSQL in a temporary folder, or in `--keep-dir` (reused by the
   next run with the same scale, so that 10 M rows are seeded once), or a fresh database on
   the server SALESOPS_DATABASE_URL names; migrated to head (a kept database picks up new
   migrations, so a run before and after an index compares like with like).
2. Seed (`benchmarks.forecast_seed`, not measured): 1,000 reps in 100 teams under 10
   managers in 4 regions (some reassigned mid-history), quarterly quotas, a stage
   configuration, `1,000,000 x scale` deals with about ten versions each over three years.
3. Reads, `--repeats` times each after two warm-ups, one at a time: the FastAPI app built
   from the forecast worker's own routers (its consumer left out), called in-process over
   httpx's ASGI transport, so each figure includes routing, dependencies, the SQL, the
   Python work and the JSON response. Then the ceilings (`benchmarks.forecast_ceilings`)
   through asyncpg, as many times.
4. `--snapshot`: one as_of roll-up per group_by (what a snapshot stores), timed, with the
   rows it answers. `--inspection`: GET /v1/forecast/inspection, timed.

The exit code is 0 whether or not the targets are met (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from benchmarks import forecast_ceilings as ceilings
from benchmarks.forecast_seed import NOW, Seeded, seed, seeded_deals
from benchmarks.intake import _run, machine, percentile, wait_quiet

KEY = "bench-forecast-reader"
FULL_DEALS = 1_000_000
CURRENT = ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1))
PAST = ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1))
AS_OF = datetime(2026, 5, 15, tzinfo=UTC)
WATERFALL_FROM = datetime(2026, 10, 1, tzinfo=UTC)
METRICS_YEAR = (date(2025, 1, 1), date(2025, 12, 31))
GROUP_BYS = ("rep", "team", "manager", "region")


@dataclass(frozen=True)
class Read:
    name: str
    target_ms: float
    path: str
    params: dict[str, str]
    ceiling: str
    ceiling_args: tuple[Any, ...]
    ceiling_note: str


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


READS = (
    Read(
        "roll-up 2026-Q4 by team, current",
        200,
        "/v1/forecast/rollup",
        {"period": CURRENT[0], "group_by": "team"},
        ceilings.ROLLUP_CURRENT,
        (CURRENT[1], CURRENT[2], NOW.date()),
        "same sums, one statement",
    ),
    Read(
        f"roll-up 2026-Q2 by team, as_of {AS_OF.date()}",
        1000,
        "/v1/forecast/rollup",
        {"period": PAST[0], "group_by": "team", "as_of": _iso(AS_OF)},
        ceilings.ROLLUP_AS_OF,
        (PAST[1], PAST[2], AS_OF.date(), AS_OF),
        "same sums, one statement",
    ),
    Read(
        f"waterfall 2026-Q4, {WATERFALL_FROM.date()} -> {NOW.date()}",
        2000,
        "/v1/forecast/waterfall",
        {"period": CURRENT[0], "from": _iso(WATERFALL_FROM), "to": _iso(NOW)},
        ceilings.WATERFALL,
        (CURRENT[1], CURRENT[2], WATERFALL_FROM, NOW),
        "candidates, start/end and entry/exit buckets",
    ),
    Read(
        "metrics 2025 by team",
        2000,
        "/v1/forecast/metrics",
        {
            "from": METRICS_YEAR[0].isoformat(),
            "to": METRICS_YEAR[1].isoformat(),
            "group_by": "team",
        },
        ceilings.METRICS,
        METRICS_YEAR,
        "outcomes and cycle only (no stage paths)",
    ),
)


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        return percentile(sorted(self.seconds), p) * 1000


async def timed(call: Callable[[], Awaitable[Any]], *, repeats: int, budget_s: float) -> Timing:
    """`repeats` timed calls, or fewer once `budget_s` is spent (never under three)."""
    timing = Timing()
    started = time.perf_counter()
    while len(timing.seconds) < repeats and (
        len(timing.seconds) < 3 or time.perf_counter() - started < budget_s
    ):
        t0 = time.perf_counter()
        await call()
        timing.seconds.append(time.perf_counter() - t0)
    return timing


# --------------------------------------------------------------------------- the app


@contextlib.asynccontextmanager
async def forecast_client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The forecast worker's routers in a FastAPI app whose lifespan opens only the
    database (the consumer and the broker watch are not what is measured), served
    in-process: httpx's ASGI transport runs no lifespan, so its state goes in each scope."""
    from services.forecast_worker.app import SPEC
    from services.forecast_worker.config.replays import DeadLetterReplays
    from services.forecast_worker.deals.projection import StageRules
    from services.forecast_worker.deps import ForecastState
    from services.forecast_worker.dispatch import consumer_spec
    from shared.db import create_engine, create_sessionmaker
    from shared.service import ServiceSpec, ServiceState, build_app
    from shared.settings import Settings

    settings = Settings(database_url=url, api_keys={KEY: ["forecast:read"]})

    @contextlib.asynccontextmanager
    async def reads_only(settings: Settings) -> AsyncIterator[ServiceState]:
        engine = create_engine(url, application_name="bench-forecast-queries", pool_size=2)
        names = StageRules.of(settings.won_stages, settings.lost_stages)
        spec = consumer_spec(names)
        try:
            yield ServiceState(
                state=ForecastState(
                    settings=settings,
                    sessions=create_sessionmaker(engine),
                    consumer=spec,
                    replays=DeadLetterReplays(engine, spec, names),
                ),
                readiness={},
            )
        finally:
            await engine.dispose()

    spec = ServiceSpec(SPEC.name, SPEC.title, SPEC.routers, reads_only)
    app = build_app(settings, [spec], title=SPEC.title)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=600,
        ) as client:
            yield client


async def get(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> Any:
    response = await client.get(path, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:500]}")
    return response.json()


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    read: Read
    ours: Timing
    ceiling: Timing
    rows: int
    ceiling_rows: int


async def measure(url: str, dsn: str, args: Args) -> tuple[list[Result], list[str]]:
    results: list[Result] = []
    extra: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        async with forecast_client(url) as client:
            for read in READS:
                if not args.only or any(word in read.name for word in args.only):
                    results.append(await measure_read(client, conn, read, args))
            if args.snapshot:
                extra.extend(await snapshot(client))
            if args.inspection:
                extra.extend(await inspection(client))
    finally:
        await conn.close()
    return results, extra


async def measure_read(
    client: httpx.AsyncClient, conn: asyncpg.Connection, read: Read, args: Args
) -> Result:
    """The route, then its ceiling; each called once untimed first (a warm cache)."""

    async def ours() -> Any:
        return await get(client, read.path, read.params)

    async def ceiling() -> Any:
        return await conn.fetch(read.ceiling, *read.ceiling_args)

    rows, ceiling_rows = len((await ours())["rows"]), len(await ceiling())
    ours_timing = await timed(ours, repeats=args.repeats, budget_s=args.budget)
    ceiling_timing = await timed(ceiling, repeats=args.repeats, budget_s=args.budget)
    print(f"  measured {read.name}: p95 {ours_timing.pct(95):.0f} ms", flush=True)
    return Result(read, ours_timing, ceiling_timing, rows, ceiling_rows)


async def snapshot(client: httpx.AsyncClient) -> list[str]:
    """What a snapshot costs: one as_of roll-up per group_by, as stored per-group rows."""
    lines = []
    total_s = 0.0
    total_rows = 0
    for group_by in GROUP_BYS:
        params = {"period": PAST[0], "group_by": group_by, "as_of": _iso(AS_OF)}
        await get(client, "/v1/forecast/rollup", params)
        t0 = time.perf_counter()
        answer = await get(client, "/v1/forecast/rollup", params)
        spent = time.perf_counter() - t0
        total_s += spent
        total_rows += len(answer["rows"])
        count = len(answer["rows"])
        lines.append(f"  as_of roll-up by {group_by:<8} {spent * 1000:7.0f} ms, {count} rows")
    lines.append(f"  snapshot total (4 group_bys): {total_s * 1000:.0f} ms, {total_rows} rows")
    return [f"snapshot (one as_of roll-up per group_by, {PAST[0]} as_of {AS_OF.date()}):", *lines]


async def inspection(client: httpx.AsyncClient) -> list[str]:
    await get(client, "/v1/forecast/inspection", {})
    t0 = time.perf_counter()
    answer = await get(client, "/v1/forecast/inspection", {})
    spent = time.perf_counter() - t0
    rows = len(answer.get("items", answer.get("rows", [])))
    return [f"inspection: GET /v1/forecast/inspection {spent * 1000:.0f} ms, {rows} rows"]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Args:
    scale: float
    keep_dir: Path | None
    repeats: int
    budget: float
    wait_quiet: float
    snapshot: bool
    inspection: bool
    only: list[str]


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.forecast_queries", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--scale", type=float, default=1.0, help="deals = 1,000,000 x scale")
    p.add_argument(
        "--keep-dir", type=Path, help="embedded PostgreSQL data folder kept between runs"
    )
    p.add_argument("--repeats", type=int, default=30, help="timed requests per read")
    p.add_argument(
        "--budget", type=float, default=120.0, help="seconds per read before repeats stop"
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other processes to go quiet before measuring",
    )
    p.add_argument("--snapshot", action="store_true", help="also time a snapshot's roll-ups")
    p.add_argument("--inspection", action="store_true", help="also time GET inspection")
    p.add_argument("--only", nargs="*", default=[], help="only reads whose name has a word")
    a = p.parse_args(argv)
    if a.scale <= 0 or a.repeats < 1:
        p.error("--scale and --repeats must be positive")
    return Args(
        a.scale, a.keep_dir, a.repeats, a.budget, a.wait_quiet, a.snapshot, a.inspection, a.only
    )


def report(
    results: list[Result],
    extra: list[str],
    *,
    command: str,
    db_desc: str,
    seeded: Seeded,
    load: tuple[float, str],
) -> None:
    print()
    print("== salesops forecast query benchmark ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    print(f"{'database:':<22}{db_desc}")
    print(f"{'background load:':<22}{load[0]:.0f}% of one core before measuring ({load[1]})")
    print(
        f"{'data:':<22}{seeded.deals:,} deals, {seeded.versions:,} versions; "
        f"seeded in {seeded.seconds:.0f}s; database {seeded.database_bytes / 2**30:.2f} GiB"
    )
    print()
    print(
        "| read | n | ours p50 / p95 / p99 ms | target p95 | ceiling p50 / p95 / p99 ms "
        "| ratio p95 ours/ceiling | rows (ours / ceiling) | ceiling is |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ours, ceil = r.ours, r.ceiling
        verdict = "PASS" if ours.pct(95) < r.read.target_ms else "MISS"
        print(
            f"| {r.read.name} | {len(ours.seconds)} "
            f"| {ours.pct(50):.0f} / {ours.pct(95):.0f} / {ours.pct(99):.0f} "
            f"| < {r.read.target_ms:.0f} {verdict} "
            f"| {ceil.pct(50):.0f} / {ceil.pct(95):.0f} / {ceil.pct(99):.0f} "
            f"| {ours.pct(95) / ceil.pct(95):.2f} | {r.rows} / {r.ceiling_rows} "
            f"| {r.read.ceiling_note} |"
        )
    print()
    for line in extra:
        print(line)


@contextlib.contextmanager
def database(args: Args, tmp: Path) -> Iterator[tuple[str, str]]:
    import os

    from shared.embedded import embedded_postgres, scratch_database

    external = os.environ.get("SALESOPS_DATABASE_URL")
    if external:
        with scratch_database(external, prefix="salesops_bench") as url:
            yield url, f"SALESOPS_DATABASE_URL server, fresh database {url.rsplit('/', 1)[-1]}"
        return
    folder = args.keep_dir or tmp
    with embedded_postgres(folder / "pg") as url:
        kept = "kept in " + str(args.keep_dir) if args.keep_dir else "temporary data folder"
        yield url, f"embedded PostgreSQL ({kept})"


async def prepare(dsn: str, deals: int) -> Seeded:
    """Seed an empty database; a kept one with the same deals is measured as it is."""
    have = await seeded_deals(dsn)
    if have == deals:
        conn = await asyncpg.connect(dsn)
        try:
            versions = int(await conn.fetchval("SELECT count(*) FROM forecast.deal_versions"))
            size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        return Seeded(deals, versions, 0.0, size)
    if have:
        raise SystemExit(f"the kept database has {have:,} deals, not {deals:,}: another --keep-dir")
    return await seed(dsn, deals=deals)


async def summarise(url: str) -> list[str]:
    """The metrics summary brought up to date as the worker's summariser does it (not
    measured with the reads): every deal on a new database, and once more, as the mark
    of a first catch-up stays before every deal; nothing on a summarised kept one."""
    from services.forecast_worker.summary.summariser import summarise as catch_up
    from shared.db import create_engine, create_sessionmaker

    engine = create_engine(url, application_name="bench-forecast-summary", pool_size=1)
    lines = []
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            deals = await catch_up(create_sessionmaker(engine))
            spent = time.perf_counter() - t0
            lines.append(f"summary: caught up {deals:,} deals in {spent:.1f}s")
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE forecast.stage_visits")
            await conn.exec_driver_sql("VACUUM ANALYZE forecast.deal_creations")
    finally:
        await engine.dispose()
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.forecast_queries " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    from services.cli import run_migrations

    deals = max(1, round(FULL_DEALS * args.scale))
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salesops-bench-")))
        url, db_desc = stack.enter_context(database(args, tmp))
        run_migrations(url)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        seeded = _run(prepare(dsn, deals))
        if seeded.seconds:
            print(f"seeded {seeded.versions:,} versions in {seeded.seconds:.0f}s", flush=True)
        for line in _run(summarise(url)):
            print(line, flush=True)
        load = wait_quiet(args.wait_quiet)
        results, extra = _run(measure(url, dsn, args))
        report(results, extra, command=command, db_desc=db_desc, seeded=seeded, load=load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
