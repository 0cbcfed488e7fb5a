"""Seed a commissions database at scale for `benchmarks.comp_recompute` and
`benchmarks.comp_simulate`: plans, assignments, the hierarchy, quotas, FX rates and a year
of won deals with splits, in the rows the comp intake writes, by COPY.

    .venv/bin/python -m benchmarks.comp_seed --db NAME [--credits 1000000] [--reps 1000]

The database NAME is created on the server SALESOPS_DATABASE_URL names (default
postgresql://postgres@127.0.0.1:5432), migrated to head and seeded; an existing one with
the same seed is left as it is, so A and B runs of a benchmark read the same rows (drop it
with `--drop` when done).

The shape (every draw a hash of the deal number, so a seed gives the same rows every run):
- `reps` reps; the last 1% are managers of equal teams of the rest (roll-up credit, level 1);
- sellers on plan `ae`: quarterly, tiers on attainment (marginal: 5% to 50%, 8% to 100%,
  10% above), an accelerator at 120% (x1.5), overlay splits earning without quota credit,
  a 90-day clawback on lost/deleted, prorated on the contract, reducing attainment; a second
  version from 2026-07-01 raises the top tier to 12%;
- managers on plan `mgr`: the same table on their team's bookings, no clawback (so the
  engine settles each deal under two clawback policies, as a real mix of plans makes it);
- deals won over 2026: one change each (won, with owner or splits); 25% split 60/40
  between two sellers of a team, 5% of those with a 10% overlay; 10% in EUR (daily
  rates); 3% lost again within the window (a second change), which claws back.

Credits per deal: owner or splits (1, 2 or 3) plus one manager credit per revenue split,
about 2.6 on average; `--credits` is turned into deals by that average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.intake import machine

YEAR = 2026
START = date(YEAR, 1, 1)
DAYS = 365
CREDITS_PER_DEAL = 2.6
SOURCE = "app://bench-comp"
CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
PRICES = (Decimal(4800), Decimal(12000), Decimal(18000), Decimal(36000))


def server_url() -> str:
    url = os.environ.get("SALESOPS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def dsn_of(name: str) -> str:
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


def sqlalchemy_url(name: str) -> str:
    return (
        make_url(dsn_of(name))
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )


def _mix(n: int, part: int) -> int:
    """A deterministic draw for deal `n` (splitmix64), distinct per `part`."""
    z = (n * 0x9E3779B97F4A7C15 + part * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def rep(number: int) -> str:
    return f"rep-{number:04d}"


def layout(reps: int) -> tuple[list[str], list[str]]:
    """Sellers and managers."""
    managers = max(1, reps // 100)
    return [rep(n) for n in range(reps - managers)], [rep(n) for n in range(reps - managers, reps)]


def team_of(seller: int, sellers: int, managers: int) -> int:
    return seller * managers // sellers


def _tiers(top: str) -> list[dict[str, str | None]]:
    return [
        {"from": "0", "to": "50", "rate": "5"},
        {"from": "50", "to": "100", "rate": "8"},
        {"from": "100", "to": None, "rate": top},
    ]


def plan_document(*, manager: bool, top: str = "10") -> dict[str, object]:
    component = {
        "id": "bookings",
        "rate_table": {"basis": "attainment", "mode": "marginal", "tiers": _tiers(top)},
        "accelerators": [{"threshold": "120", "multiplier": "1.5"}],
    }
    document: dict[str, object] = {
        "name": "Managers" if manager else "Account executives",
        "currency": "USD",
        "period": "quarter",
        "target_variable": "30000",
        "components": [component],
        "credit_rules": {"roles": {"overlay": {"quota": False, "payout": True}}},
    }
    if manager:
        document["credit_rules"] = {"manager_rollup": {"levels": 1}}
    else:
        document["clawback"] = {
            "window_days": 90,
            "triggers": ["lost", "deleted"],
            "base": "original_rate",
            "extent": "prorated",
            "contract_months_default": 12,
            "reduces_attainment": True,
        }
    return document


def deal_rows(
    first: int, last: int, sellers: int, managers: int
) -> tuple[list[tuple[object, ...]], list[tuple[str, str]]]:
    """deal_changes rows and deal_reps pairs of deals `first`..`last - 1`."""
    changes: list[tuple[object, ...]] = []
    pairs: list[tuple[str, str]] = []
    for n in range(first, last):
        deal_id = f"deal-{n:08d}"
        owner = _mix(n, 1) % sellers
        day = START + timedelta(days=_mix(n, 2) % DAYS)
        at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(
            minutes=_mix(n, 3) % 480
        )
        amount = PRICES[_mix(n, 4) % 4] * (Decimal(80 + _mix(n, 5) % 41) / 100)
        currency = "EUR" if _mix(n, 6) % 10 == 0 else "USD"
        fields: dict[str, object] = {
            "name": f"Deal {n}",
            "amount": str(amount),
            "currency": currency,
            "owner_id": rep(owner),
            "stage": "Won",
            "status": "won",
            "close_date": day.isoformat(),
            "pipeline": "default",
            "deal_type": "new",
            "properties": {"contract_months": 12},
        }
        named = {rep(owner)}
        if _mix(n, 7) % 4 == 0:
            team = team_of(owner, sellers, managers)
            size = sellers // managers
            partner = team * size + (owner - team * size + 1 + _mix(n, 8) % (size - 1)) % size
            partner = min(partner, sellers - 1)
            splits = [
                {"rep_id": rep(owner), "percent": "60", "role": "owner"},
                {"rep_id": rep(partner), "percent": "40", "role": "revenue"},
            ]
            named.add(rep(partner))
            if _mix(n, 9) % 20 == 0:
                overlay = (owner + sellers // 2) % sellers
                splits.append({"rep_id": rep(overlay), "percent": "10", "role": "overlay"})
                named.add(rep(overlay))
            fields["splits"] = splits
        changes.append((SOURCE, f"{deal_id}-won", deal_id, CREATED, at, n, json.dumps(fields)))
        if _mix(n, 10) % 100 < 3:
            lost = at + timedelta(days=10 + _mix(n, 11) % 70)
            update = {"stage": "Lost", "status": "lost"}
            changes.append(
                (SOURCE, f"{deal_id}-lost", deal_id, UPDATED, lost, n, json.dumps(update))
            )
        pairs += [(deal_id, r) for r in sorted(named)]
    return changes, pairs


async def _reference(conn: asyncpg.Connection, reps: int, deals: int) -> None:
    sellers, managers = layout(reps)
    seeded_at = datetime(YEAR - 1, 12, 1, tzinfo=UTC)
    for plan_id, version, effective, document in (
        ("ae", 1, START, plan_document(manager=False)),
        ("ae", 2, date(YEAR, 7, 1), plan_document(manager=False, top="12")),
        ("mgr", 1, START, plan_document(manager=True)),
    ):
        await conn.execute(
            "INSERT INTO comp.plan_versions (plan_id, version, effective_from, document,"
            " created_by) VALUES ($1, $2, $3, $4::jsonb, 'bench')",
            plan_id,
            version,
            effective,
            json.dumps(document),
        )
    await conn.copy_records_to_table(
        "assignments",
        schema_name="comp",
        columns=["rep_id", "plan_id", "start", "created_by"],
        records=[(r, "ae", START, "bench") for r in sellers]
        + [(m, "mgr", START, "bench") for m in managers],
    )
    await conn.copy_records_to_table(
        "rep_teams",
        schema_name="comp",
        columns=["rep_id", "effective_from", "team_id", "event_time", "event_source", "event_id"],
        records=[
            (r, START, f"team-{team_of(i, len(sellers), len(managers))}", seeded_at, SOURCE, r)
            for i, r in enumerate(sellers)
        ],
    )
    await conn.copy_records_to_table(
        "team_managers",
        schema_name="comp",
        columns=[
            "team_id",
            "effective_from",
            "manager_id",
            "event_time",
            "event_source",
            "event_id",
        ],
        records=[(f"team-{t}", START, m, seeded_at, SOURCE, m) for t, m in enumerate(managers)],
    )
    # Quotas near the expected bookings, so attainment spreads either side of 100%.
    per_seller = Decimal(deals) * Decimal("1.2") * Decimal(20000) / len(sellers) / 4
    quotas = []
    for q in range(4):
        first = date(YEAR, 3 * q + 1, 1)
        last = (date(YEAR, 3 * q + 4, 1) if q < 3 else date(YEAR + 1, 1, 1)) - timedelta(days=1)
        for r in sellers:
            quotas.append((f"{r}-q{q}", r, first, last, round(per_seller, 0)))
        for m in managers:
            team = round(per_seller * len(sellers) / len(managers), 0)
            quotas.append((f"{m}-q{q}", m, first, last, team))
    await conn.copy_records_to_table(
        "quotas",
        schema_name="comp",
        columns=[
            "quota_id",
            "rep_id",
            "period_start",
            "period_end",
            "amount",
            "currency",
            "event_time",
            "event_source",
            "event_id",
        ],
        records=[(*q, "USD", seeded_at, SOURCE, q[0]) for q in quotas],
    )
    await conn.copy_records_to_table(
        "fx_rates",
        schema_name="comp",
        columns=["base", "quote", "day", "rate"],
        records=[
            (
                "EUR",
                "USD",
                START - timedelta(days=31) + timedelta(days=d),
                Decimal("1.08") + Decimal(d % 40) / 1000,
            )
            for d in range(DAYS + 62)
        ],
    )


async def seed(name: str, *, credits: int, reps: int, chunk: int = 50_000) -> dict[str, int]:
    """Seed `name` unless it holds this seed already; what it holds."""
    admin = await asyncpg.connect(server_url())
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    from services.cli import run_migrations

    await asyncio.to_thread(run_migrations, sqlalchemy_url(name))
    deals = max(1, round(credits / CREDITS_PER_DEAL))
    conn = await asyncpg.connect(dsn_of(name))
    try:
        have = int(await conn.fetchval("SELECT count(DISTINCT deal_id) FROM comp.deal_changes"))
        if have == 0:
            t0 = time.perf_counter()
            await _reference(conn, reps, deals)
            sellers, managers = layout(reps)
            for first in range(0, deals, chunk):
                changes, pairs = deal_rows(
                    first, min(deals, first + chunk), len(sellers), len(managers)
                )
                await conn.copy_records_to_table(
                    "deal_changes",
                    schema_name="comp",
                    columns=[
                        "source",
                        "event_id",
                        "deal_id",
                        "event_type",
                        "event_time",
                        "sequence",
                        "fields",
                    ],
                    records=changes,
                )
                await conn.copy_records_to_table(
                    "deal_reps", schema_name="comp", columns=["deal_id", "rep_id"], records=pairs
                )
                print(f"seeded {min(deals, first + chunk):,}/{deals:,} deals", flush=True)
            await conn.execute("ANALYZE")
            print(f"seeded in {time.perf_counter() - t0:.0f}s", flush=True)
        elif have != deals:
            raise SystemExit(f"{name} holds {have:,} deals, not {deals:,}: use another --db")
        return {
            "deals": int(
                await conn.fetchval("SELECT count(DISTINCT deal_id) FROM comp.deal_changes")
            ),
            "changes": int(await conn.fetchval("SELECT count(*) FROM comp.deal_changes")),
            "reps": int(await conn.fetchval("SELECT count(*) FROM comp.assignments")),
        }
    finally:
        await conn.close()


def header(what: str, command: str, seeded: dict[str, int]) -> None:
    """The head every commission benchmark prints: what ran, where, on which data."""
    print()
    print(f"== salesops commission {what} benchmark ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    print(f"{'data:':<22}{seeded}")


async def drop(name: str) -> None:
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", required=True, help="database name on the server")
    p.add_argument("--credits", type=int, default=1_000_000, help="about this many credits")
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--drop", action="store_true", help="drop the database instead")
    a = p.parse_args(argv)
    if a.drop:
        asyncio.run(drop(a.db))
        return 0
    print(asyncio.run(seed(a.db, credits=a.credits, reps=a.reps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
