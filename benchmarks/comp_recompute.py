"""Full commission recompute benchmark: every rep's ledger lines for the year, from
scratch, against a ceiling of reading the same deals with one SQL query and constructing
their credits, measured in the same run.

    .venv/bin/python -m benchmarks.comp_recompute --db NAME [--credits 1000000]
        [--repeats 1] [--processes 1] [--deals-per-chunk N] [--post] [--profile FILE]

The database is seeded first by `benchmarks.comp_seed` (created when missing; a seeded one
is reused, so A and B runs read the same rows). Each measurement runs in a child process
of its own so its peak RSS is its own (worker processes' peak is added); ours and the
ceiling alternate `--repeats` times.

- ours: `recalc.bulk.recompute_all` (chunked, optionally in processes, posting the
  differences to the ledger with `--post`); on a tree without it (the A/B base), what it
  had: the recalculation rounds' `load_inputs` + `compute`, one rep at a time.
- ceiling: `SELECT deal_id, event_time, fields FROM comp.deal_changes` through asyncpg,
  each deal's last won state parsed and one credit tuple per split, overlay and manager
  roll-up built: reading and constructing, with none of the plan's arithmetic.

`--profile FILE` runs ours once under cProfile (serial) and prints its top functions.
The exit code is 0 whether or not the targets are met (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import resource
import shlex
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from benchmarks.comp_seed import dsn_of, header, seed, sqlalchemy_url

TODAY = date(2027, 1, 1)
"""Every period of the seeded year has ended: minimums, draws and bonuses are all due."""


def _rss_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


async def ours(
    name: str, *, processes: int, deals_per_chunk: int | None, post: bool
) -> dict[str, Any]:
    from services.comp_engine.deals.history import StageNames

    names = StageNames.of(["won"], ["lost"])
    url = sqlalchemy_url(name)
    t0 = time.perf_counter()
    try:
        from services.comp_engine.recalc import bulk
    except ImportError:
        return await _per_rep(url, names, t0)
    kwargs: dict[str, Any] = {"processes": processes, "post": post}
    if deals_per_chunk:
        kwargs["deals_per_chunk"] = deals_per_chunk
    done = await bulk.recompute_all(url, names=names, today=TODAY, **kwargs)
    return {
        "seconds": time.perf_counter() - t0,
        "reps": done.reps,
        "lines": done.computed,
        "posted": done.posted,
        "waiting": done.waiting,
        "totals": {k: str(v) for k, v in sorted(done.totals.items())},
        "path": f"bulk, {processes} process(es)" + (", posting" if post else ""),
    }


async def _per_rep(url: str, names: Any, t0: float) -> dict[str, Any]:
    """The base's way to every rep: its recalculation rounds, one rep at a time (a whole
    `load_inputs` of every rep fails above 32,767 deals: its payments query took one
    parameter per deal)."""
    from services.comp_engine.calc.engine import compute
    from services.comp_engine.recalc import repository
    from shared.db import create_engine

    engine = create_engine(url, application_name="bench-comp", pool_size=1)
    totals: dict[str, Decimal] = {}
    lines = waiting = 0
    try:
        async with engine.connect() as conn:
            reps = sorted({a.rep_id for a in await repository.load_assignments(conn)})
            for rep in reps:
                histories, inputs = await repository.load_inputs(conn, rep_ids=[rep], names=names)
                result = compute(histories, inputs, today=TODAY, only={rep})
                lines += len(result.lines)
                waiting += len(result.waiting)
                for line in result.lines:
                    totals[line.currency] = totals.get(line.currency, Decimal(0)) + line.amount
    finally:
        await engine.dispose()
    return {
        "seconds": time.perf_counter() - t0,
        "reps": len(reps),
        "lines": lines,
        "posted": 0,
        "waiting": waiting,
        "totals": {k: str(v) for k, v in sorted(totals.items())},
        "path": "per rep, as the recalculation rounds: load_inputs + compute",
    }


async def ceiling(name: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    conn = await asyncpg.connect(dsn_of(name))
    try:
        managers = {
            r["rep_id"]: r["manager_id"]
            for r in await conn.fetch(
                "SELECT t.rep_id, m.manager_id FROM comp.rep_teams t"
                " JOIN comp.team_managers m USING (team_id)"
            )
        }
        rows = await conn.fetch(
            "SELECT deal_id, event_time, fields FROM comp.deal_changes ORDER BY deal_id, event_time"
        )
    finally:
        await conn.close()
    won: dict[str, dict[str, Any]] = {}
    for row in rows:
        fields = json.loads(row["fields"])
        if fields.get("status") == "won":
            won[row["deal_id"]] = fields
    credits = []
    for deal_id, fields in won.items():
        amount = Decimal(fields["amount"])
        splits = fields.get("splits") or [
            {"rep_id": fields["owner_id"], "percent": "100", "role": "owner"}
        ]
        for s in splits:
            share = Decimal(s["percent"]) / 100
            credits.append((s["rep_id"], deal_id, s["role"], amount * share))
            manager = managers.get(s["rep_id"])
            if manager and s["role"] != "overlay":
                credits.append((manager, deal_id, "manager:1", amount * share))
    return {"seconds": time.perf_counter() - t0, "credits": len(credits), "deals": len(won)}


async def _inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _profiled(name: str) -> dict[str, Any]:
    # cProfile sees one thread: the computation runs on it rather than in `to_thread`.
    asyncio.to_thread = _inline
    profile = cProfile.Profile()
    profile.enable()
    found = asyncio.run(ours(name, processes=1, deals_per_chunk=None, post=False))
    profile.disable()
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime")
    rows = []
    for (path, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, calls, f"{path.split('salesops')[-1]}:{line}({func})"))
    rows.sort(reverse=True)
    found["profile_self"] = [list(r) for r in rows[:25]]
    by_cum = sorted(
        (r for r in rows if "services/" in r[3] or "shared/" in r[3]), key=lambda r: -r[1]
    )
    found["profile_cumulative"] = [list(r) for r in by_cum[:25]]
    return found


def child(args: argparse.Namespace) -> int:
    if args.child == "ceiling":
        found = asyncio.run(ceiling(args.db))
    elif args.child == "profile":
        found = _profiled(args.db)
    else:
        found = asyncio.run(
            ours(
                args.db,
                processes=args.processes,
                deals_per_chunk=args.deals_per_chunk,
                post=args.post,
            )
        )
    own, children = _rss_mib()
    found |= {"rss_mib": own, "children_rss_mib": children}
    print("RESULT " + json.dumps(found))
    return 0


def _spawn(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.comp_recompute", "--db", args.db]
    command += ["--child", kind, "--processes", str(args.processes)]
    if args.deals_per_chunk:
        command += ["--deals-per-chunk", str(args.deals_per_chunk)]
    if args.post:
        command.append("--post")
    return child_result(kind, command)


def child_result(kind: str, command: list[str]) -> dict[str, Any]:
    """Run a measured child in a process of its own (its RSS is its own) and read back the
    `RESULT {json}` line it prints."""
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise SystemExit(f"{kind} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--credits", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--deals-per-chunk", type=int, default=0)
    p.add_argument("--post", action="store_true", help="also post the lines to the ledger")
    p.add_argument("--profile", action="store_true", help="profile ours once (cProfile)")
    p.add_argument("--child", choices=("ours", "ceiling", "profile"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    command = "python -m benchmarks.comp_recompute " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    seeded = asyncio.run(seed(args.db, credits=args.credits, reps=args.reps))
    header("recompute", command, seeded)
    if args.profile:
        found = _spawn("profile", args)
        print(f"profiled run: {found['seconds']:.1f}s, {found['lines']:,} lines")
        print("top self time (tottime s, cumtime s, calls, function):")
        for row in found["profile_self"]:
            print(f"  {row[0]:8.2f} {row[1]:8.2f} {row[2]:>10} {row[3]}")
        print("project functions by cumulative time:")
        for row in found["profile_cumulative"]:
            print(f"  {row[0]:8.2f} {row[1]:8.2f} {row[2]:>10} {row[3]}")
        return 0
    print()
    print(
        "| run | load before | ours s | ours peak RSS MiB | lines | credits/s "
        "| ceiling s | ceiling RSS MiB | ratio ours/ceiling | target < 60 s, < 2048 MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in range(args.repeats):
        load = _load()
        mine = _spawn("ours", args)
        ceil = _spawn("ceiling", args)
        rss = mine["rss_mib"] + mine["children_rss_mib"]
        verdict = "PASS" if mine["seconds"] < 60 and rss < 2048 else "MISS"
        print(
            f"| {run + 1} | {load} | {mine['seconds']:.1f} | {rss:.0f} | {mine['lines']:,} "
            f"| {ceil['credits'] / mine['seconds']:,.0f} | {ceil['seconds']:.1f} "
            f"| {ceil['rss_mib']:.0f} | {mine['seconds'] / ceil['seconds']:.1f} | {verdict} |",
            flush=True,
        )
    print()
    print(
        f"ours: {mine['path']}; {mine['reps']} reps, {mine['waiting']} waiting, "
        f"posted {mine['posted']:,}; totals {mine['totals']}"
    )
    print(f"ceiling: {ceil['credits']:,} credits of {ceil['deals']:,} won deals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
