"""The bulk recompute (`recalc.bulk`) gives the lines one whole calculation gives, traces
included, however the reps are chunked and however many processes run the chunks: sellers
with splits and overlays on a clawback plan, deals lost inside the window, and managers
whose roll-up credit reads their reports' deals from other chunks."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import PlanVersion
from services.comp_engine.calc.lines import Line
from services.comp_engine.deals.history import StageNames
from services.comp_engine.plans.document import PlanDocument
from services.comp_engine.recalc import bulk, repository
from services.comp_engine.simulate.run import SIMULATED
from services.comp_engine.simulate.stored import simulate_stored
from services.comp_engine.simulate.workers import Workers
from shared.db import create_engine

pytestmark = pytest.mark.integration

NAMES = StageNames.of(["won"], ["lost"])
TODAY = date(2027, 1, 1)
TABLE = {
    "basis": "attainment",
    "mode": "marginal",
    "tiers": [
        {"from": "0", "to": "50", "rate": "5"},
        {"from": "50", "to": "100", "rate": "8"},
        {"from": "100", "rate": "10"},
    ],
}


def _plan(manager: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "bulk",
        "currency": "USD",
        "period": "quarter",
        "target_variable": "30000",
        "quota": "150000",
        "components": [
            {
                "id": "c",
                "rate_table": TABLE,
                "accelerators": [{"threshold": "120", "multiplier": "1.5"}],
            }
        ],
        "credit_rules": {"roles": {"overlay": {"quota": False, "payout": True}}},
    }
    if manager:
        document["credit_rules"] = {"manager_rollup": {"levels": 1}}
    else:
        document["clawback"] = {
            "window_days": 90,
            "triggers": ["lost"],
            "extent": "prorated",
            "reduces_attainment": True,
        }
    return document


async def _seed(url: str, tag: str) -> None:
    rnd = random.Random(9)
    sellers = [f"{tag}-s{n}" for n in range(8)]
    managers = [f"{tag}-m0", f"{tag}-m1"]
    start, at = date(2026, 1, 1), datetime(2025, 12, 1, tzinfo=UTC)
    engine = create_engine(url, application_name="test-bulk")
    async with engine.begin() as conn:
        for plan_id, rollup in ((f"{tag}-ae", False), (f"{tag}-mgr", True)):
            await conn.execute(
                text(
                    "INSERT INTO comp.plan_versions (plan_id, version, effective_from, document,"
                    " created_by) VALUES (:p, 1, :d, CAST(:doc AS jsonb), 't')"
                ),
                {"p": plan_id, "d": start, "doc": json.dumps(_plan(rollup))},
            )
        for rep in sellers + managers:
            plan_id = f"{tag}-mgr" if rep in managers else f"{tag}-ae"
            await conn.execute(
                text(
                    "INSERT INTO comp.assignments (rep_id, plan_id, start, created_by)"
                    " VALUES (:r, :p, :d, 't')"
                ),
                {"r": rep, "p": plan_id, "d": start},
            )
        for n, rep in enumerate(sellers):
            await conn.execute(
                text(
                    "INSERT INTO comp.rep_teams (rep_id, effective_from, team_id,"
                    " event_time, event_source, event_id) VALUES (:r, :d, :t, :at, 't', :r)"
                ),
                {"r": rep, "d": start, "t": f"{tag}-t{n % 2}", "at": at},
            )
        for n, boss in enumerate(managers):
            await conn.execute(
                text(
                    "INSERT INTO comp.team_managers (team_id, effective_from, manager_id,"
                    " event_time, event_source, event_id) VALUES (:t, :d, :m, :at, 't', :m)"
                ),
                {"t": f"{tag}-t{n}", "d": start, "m": boss, "at": at},
            )
        for n in range(120):
            deal = f"{tag}-d{n}"
            owner, partner, overlay = rnd.sample(sellers, 3)
            day = start + timedelta(days=rnd.randrange(365))
            won_at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            fields: dict[str, Any] = {
                "amount": str(rnd.randrange(5, 60) * 1000),
                "currency": "USD",
                "owner_id": owner,
                "status": "won",
                "stage": "Won",
                "close_date": day.isoformat(),
                "properties": {"contract_months": 12},
            }
            named = {owner}
            if n % 3 == 0:
                fields["splits"] = [
                    {"rep_id": owner, "percent": "60", "role": "owner"},
                    {"rep_id": partner, "percent": "40", "role": "revenue"},
                    {"rep_id": overlay, "percent": "10", "role": "overlay"},
                ]
                named |= {partner, overlay}
            changes = [(f"{deal}-won", won_at, fields)]
            if n % 7 == 0:
                lost = {"status": "lost", "stage": "Lost"}
                changes.append((f"{deal}-lost", won_at + timedelta(days=30), lost))
            for number, (event_id, time, body) in enumerate(changes):
                await conn.execute(
                    text(
                        "INSERT INTO comp.deal_changes (source, event_id, deal_id, event_type,"
                        " event_time, sequence, fields) VALUES ('t', :e, :d,"
                        " 'com.salesops.deal.updated.v1', :at, :s, CAST(:f AS jsonb))"
                    ),
                    {"e": event_id, "d": deal, "at": time, "s": number, "f": json.dumps(body)},
                )
            for rep in sorted(named):
                await conn.execute(
                    text("INSERT INTO comp.deal_reps (deal_id, rep_id) VALUES (:d, :r)"),
                    {"d": deal, "r": rep},
                )
    await engine.dispose()


def _shown(lines: list[Line], tag: str) -> list[tuple[Any, ...]]:
    """Lines as comparable values: `Line` leaves its trace out of equality."""
    return [
        (line.key, line.amount, line.currency, json.dumps(line.trace, sort_keys=True))
        for line in lines
        if line.key.rep_id.startswith(tag)
    ]


async def test_chunked_and_parallel_recompute_equal_one_whole_calculation(
    database_url: str,
) -> None:
    tag = f"bulk{uuid.uuid4().hex[:6]}"
    await _seed(database_url, tag)
    engine = create_engine(database_url, application_name="test-bulk")
    async with engine.connect() as conn:
        reps = sorted({a.rep_id for a in await repository.load_assignments(conn)})
        histories, inputs = await repository.load_inputs(conn, rep_ids=reps, names=NAMES)
    await engine.dispose()
    whole = _shown(compute(histories, inputs, today=TODAY, only=set(reps)).lines, tag)
    assert len({k[0].rep_id for k in whole}) == 10, "every seller and manager has lines"
    assert any(k[0].kind == "clawback" for k in whole)
    assert any(k[0].role == "manager:1" for k in whole)

    serial = await bulk.recompute_all(database_url, names=NAMES, today=TODAY, keep_lines=True)
    chunked = await bulk.recompute_all(
        database_url, names=NAMES, today=TODAY, keep_lines=True, deals_per_chunk=40
    )
    parallel = await bulk.recompute_all(
        database_url,
        names=NAMES,
        today=TODAY,
        keep_lines=True,
        deals_per_chunk=40,
        processes=2,
    )
    assert len(bulk.chunks(await _weights(database_url), limit=40)) > 2
    assert _shown(serial.lines, tag) == whole
    assert _shown(chunked.lines, tag) == whole
    assert _shown(parallel.lines, tag) == whole


async def test_a_stored_simulation_in_processes_equals_one_in_the_caller(
    database_url: str,
) -> None:
    """`simulate_stored` fanned out to worker processes, in small chunks, reduces to the
    same totals, attainment bands and waits as one run on the caller's connection."""
    tag = f"bulk{uuid.uuid4().hex[:6]}"
    await _seed(database_url, tag)
    version = _steeper_draft()
    engine = create_engine(database_url, application_name="test-bulk")
    async with engine.connect() as conn:
        assigned = {a.rep_id for a in await repository.load_assignments(conn)}
        reps = sorted(rep for rep in assigned if rep.startswith(tag))
        start, end = date(2026, 1, 1), date(2027, 1, 1)
        whole = await simulate_stored(
            conn, version, reps=reps, names=NAMES, today=TODAY, start=start, end=end
        )
        workers = Workers(2)
        try:
            parallel = await simulate_stored(
                conn,
                version,
                reps=reps,
                names=NAMES,
                today=TODAY,
                start=start,
                end=end,
                deals_per_chunk=40,
                workers=workers,
                url=database_url,
            )
        finally:
            workers.close()
    await engine.dispose()
    assert whole.simulated != whole.current, "the draft pays differently"
    assert parallel.simulated == whole.simulated
    assert parallel.current == whole.current
    assert parallel.bands == whole.bands
    assert sorted(parallel.waiting, key=str) == sorted(whole.waiting, key=str)


async def test_a_stored_simulation_reading_the_ledger_equals_one_computing_it(
    database_url: str,
) -> None:
    """Once the reps' ledgers are posted for the simulation's day, the plans-as-they-are
    side is read from them (every rep), and the answer is the one that computes it."""
    tag = f"bulk{uuid.uuid4().hex[:6]}"
    await _seed(database_url, tag)
    version = _steeper_draft()
    engine = create_engine(database_url, application_name="test-bulk")
    start, end = date(2026, 1, 1), date(2027, 1, 1)
    try:
        async with engine.connect() as conn:
            assigned = {a.rep_id for a in await repository.load_assignments(conn)}
        reps = sorted(rep for rep in assigned if rep.startswith(tag))
        async with engine.begin() as conn:
            await bulk.run_chunk(conn, reps, names=NAMES, today=TODAY, post=True)
        async with engine.connect() as conn:
            found = {
                use: await simulate_stored(
                    conn,
                    version,
                    reps=reps,
                    names=NAMES,
                    today=TODAY,
                    start=start,
                    end=end,
                    use_ledger=use,
                )
                for use in (True, False)
            }
    finally:
        await engine.dispose()
    read, computed = found[True], found[False]
    assert (read.from_ledger, computed.from_ledger) == (len(reps), 0)
    assert computed.current, "the reps are paid under their plans"
    assert read.current == computed.current
    assert read.simulated == computed.simulated
    assert read.bands == computed.bands


def _steeper_draft() -> PlanVersion:
    """The sellers' plan with a steeper top tier, as a simulation's draft."""
    document = copy.deepcopy(_plan(False))
    document["components"][0]["rate_table"]["tiers"][-1]["rate"] = "14"
    return PlanVersion(SIMULATED, 1, date(2026, 1, 1), PlanDocument.model_validate(document))


async def test_cli_recompute_posts_what_the_ledger_lacks_once(database_url: str) -> None:
    """`salesops comp recompute --post` posts the calculation's lines for reps no round
    touched (seeded without marks), and a second run posts none of theirs again."""
    tag = f"bulk{uuid.uuid4().hex[:6]}"
    await _seed(database_url, tag)
    engine = create_engine(database_url, application_name="test-bulk")
    async with engine.connect() as conn:
        reps = sorted({a.rep_id for a in await repository.load_assignments(conn)})
        histories, inputs = await repository.load_inputs(conn, rep_ids=reps, names=NAMES)
    expected = _totals(compute(histories, inputs, today=date.today(), only=set(reps)).lines, tag)
    assert expected

    await _cli(database_url, "comp", "recompute", "--post")
    first = await _ledger_of(engine, tag)
    await _cli(database_url, "comp", "recompute", "--post")
    second = await _ledger_of(engine, tag)
    await engine.dispose()

    assert {rep: total for rep, (total, _) in first.items()} == expected
    assert second == first, "the second run posted lines again"


def _totals(lines: list[Line], tag: str) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for line in lines:
        if line.key.rep_id.startswith(tag):
            found[line.key.rep_id] = found.get(line.key.rep_id, Decimal(0)) + line.amount
    return found


async def _ledger_of(engine: AsyncEngine, tag: str) -> dict[str, tuple[Decimal, int]]:
    """Per rep of the tag: the ledger's total and how many lines it has."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT rep_id, sum(amount) AS total, count(*) AS n FROM comp.ledger_lines"
                " WHERE rep_id LIKE :tag GROUP BY rep_id"
            ),
            {"tag": f"{tag}%"},
        )
        return {r.rep_id: (r.total, r.n) for r in rows}


async def _cli(database_url: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env={**os.environ, "SALESOPS_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")


async def _weights(url: str) -> dict[str, int]:
    engine = create_engine(url, application_name="test-bulk")
    async with engine.connect() as conn:
        found = await bulk.rep_weights(conn)
    await engine.dispose()
    return found
