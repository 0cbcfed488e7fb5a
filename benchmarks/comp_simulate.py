"""Simulate benchmark: a plan change over a year of the stored deals (the stored mode of
POST /v1/comp/simulate, minus HTTP), against the same ceiling as `benchmarks.comp_recompute`
(one SQL read of the deals and their credits constructed), in the same run.

    .venv/bin/python -m benchmarks.comp_simulate --db NAME [--credits 1000000] [--repeats 1]
        [--processes 1] [--cold]

The draft is the sellers' plan (`ae`) with a steeper top: 14% above 100% and the
accelerator from 110%, over 2026 for every rep on `ae` (99% of the reps), compared to
their plans as they are. Each measurement runs in a child process (its peak RSS is its
own).

The service's steady state is a current ledger, so before measuring, the seeded database's
ledger is posted for the benchmark's day (`bulk.recompute_all`, once: the day each rep was
computed for is kept, and a later run finds it done). "ledger" runs then read the plans as
they are from it (`simulate/posted.py`); `--cold` also measures each repeat with both
sides computed (`use_ledger=False`, as before there was a ledger to read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from benchmarks.comp_recompute import TODAY, _load, _rss_mib, ceiling, child_result
from benchmarks.comp_seed import dsn_of, header, plan_document, seed, sqlalchemy_url

FROM, TO = date(2026, 1, 1), date(2027, 1, 1)


def draft_document() -> dict[str, Any]:
    document = plan_document(manager=False, top="14")
    document["components"][0]["accelerators"] = [  # type: ignore[index]
        {"threshold": "110", "multiplier": "1.5"}
    ]
    return document


async def ours(name: str, processes: int = 1, cold: bool = False) -> dict[str, Any]:
    from services.comp_engine.deals.history import StageNames
    from services.comp_engine.plans.document import PlanDocument
    from services.comp_engine.recalc import repository
    from services.comp_engine.simulate import run
    from services.comp_engine.simulate.schemas import SimulateIn
    from services.comp_engine.simulate.stored import simulate_stored
    from services.comp_engine.simulate.workers import Workers
    from shared.db import create_engine

    names = StageNames.of(["won"], ["lost"])
    body = SimulateIn.model_validate(
        {
            "plan": PlanDocument.model_validate(draft_document()).model_dump(mode="json"),
            "effective_from": "2026-01-01",
            "today": TODAY.isoformat(),
            "stored": {"from": FROM.isoformat(), "to": TO.isoformat(), "compare_to_plan": "ae"},
        }
    )
    version = run.draft(body)
    # The service starts its workers with itself (`simulate/workers.py`): so does this,
    # before the clock starts.
    workers = Workers(processes) if processes > 1 else None
    if workers is not None:
        await asyncio.to_thread(workers.wait_ready)
    engine = create_engine(sqlalchemy_url(name), application_name="bench-comp-sim", pool_size=1)
    t0 = time.perf_counter()
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            reps = sorted(
                {a.rep_id for a in await repository.load_assignments(conn) if a.plan_id == "ae"}
            )
            found = await simulate_stored(
                conn,
                version,
                reps=reps,
                names=names,
                today=TODAY,
                start=FROM,
                end=TO,
                workers=workers,
                url=sqlalchemy_url(name),
                use_ledger=not cold,
            )
            simulated, current = found.simulated, found.current
    finally:
        await engine.dispose()
        if workers is not None:
            workers.close()
    rows = run.rep_totals(simulated, current)
    difference = sum((r.difference or Decimal(0) for r in rows), Decimal(0))
    return {
        "seconds": time.perf_counter() - t0,
        "reps": len(reps),
        "current": str(sum(current.values(), Decimal(0))),
        "difference": str(difference),
        "from_ledger": found.from_ledger,
    }


async def post_ledger(name: str, processes: int) -> float | None:
    """Post the ledger for `TODAY` unless every assigned rep's was already computed for it;
    the seconds it took, or None when it was done already."""
    from services.comp_engine.deals.history import StageNames
    from services.comp_engine.recalc import bulk

    conn = await asyncpg.connect(dsn_of(name))
    try:
        missing = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT rep_id FROM comp.assignments) a"
            " LEFT JOIN comp.computed_reps c USING (rep_id)"
            " WHERE c.computed_for IS DISTINCT FROM $1",
            TODAY,
        )
    finally:
        await conn.close()
    if not missing:
        return None
    t0 = time.perf_counter()
    await bulk.recompute_all(
        sqlalchemy_url(name),
        names=StageNames.of(["won"], ["lost"]),
        today=TODAY,
        post=True,
        processes=processes,
    )
    return time.perf_counter() - t0


def _spawn(kind: str, name: str, processes: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.comp_simulate", "--db", name, "--child", kind]
    return child_result(kind, [*command, "--processes", str(processes)])


def _row(label: str, load: str, mine: dict[str, Any], ceil: dict[str, Any]) -> str:
    verdict = "PASS" if mine["seconds"] < 15 else "MISS"
    rss = mine["rss_mib"] + mine["children_rss_mib"]
    return (
        f"| {label} | {load} | {mine['from_ledger']} | {mine['seconds']:.1f} | {rss:.0f} "
        f"| {ceil['seconds']:.1f} | {mine['seconds'] / ceil['seconds']:.1f} | {verdict} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", required=True)
    p.add_argument("--credits", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--processes", type=int, default=1, help="worker processes (stored mode)")
    p.add_argument("--cold", action="store_true", help="also measure without the ledger")
    p.add_argument("--child", choices=("ours", "cold", "ceiling"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        found = asyncio.run(
            ceiling(args.db)
            if args.child == "ceiling"
            else ours(args.db, args.processes, cold=args.child == "cold")
        )
        own, children = _rss_mib()
        print("RESULT " + json.dumps(found | {"rss_mib": own, "children_rss_mib": children}))
        return 0
    command = "python -m benchmarks.comp_simulate " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    seeded = asyncio.run(seed(args.db, credits=args.credits, reps=args.reps))
    header("simulate", command, seeded)
    posting = asyncio.run(post_ledger(args.db, max(args.processes, 2)))
    print(
        "ledger already posted for the benchmark's day"
        if posting is None
        else f"ledger posted for the benchmark's day in {posting:.1f} s (bulk recompute)"
    )
    print()
    print(
        "| run | load before | reps read from the ledger | ours s | ours peak RSS MiB "
        "| ceiling s | ratio ours/ceiling | target < 15 s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in range(args.repeats):
        kinds = ("ours", "cold") if args.cold else ("ours",)
        for kind in kinds:
            load = _load()
            mine = _spawn(kind, args.db, args.processes)
            ceil = _spawn("ceiling", args.db, args.processes)
            label = f"{run + 1} {'ledger' if kind == 'ours' else 'cold'}"
            print(_row(label, load, mine, ceil), flush=True)
    print()
    print(
        f"ours: {mine['reps']} reps; paid now {mine['current']} USD, "
        f"difference under the draft {mine['difference']} USD"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
