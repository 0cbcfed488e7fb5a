"""Seed a forecast database at scale for `benchmarks.forecast_queries`: an org, its quotas,
a stage configuration, deals and their version history, in the shape the deal projection
writes them.

The history is built inside PostgreSQL (`INSERT ... SELECT` over `generate_series`, in
chunks) rather than by folding generated events in Python: 10 M version rows through the
Python fold take most of an hour on this machine, and the reads measured only need rows of
the projection's shape. The shapes are the seeded generator's (`services/datasets/
generator.py`): a deal is created in the pipeline's first stage with no explicit category,
then its expected close date is set and pushed out, its amount changes, its category moves
pipeline -> best_case -> commit, about 4% are reassigned to another rep half-way, and a
closed deal's last version is its close (won 40%, lost 50%, category `closed` / `omitted`
as the generator's settle change leaves it); the rest stay open, some past their close
date. Every draw is a hash of the deal number, so a seed gives the same rows every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

NOW = datetime(2026, 11, 30, tzinfo=UTC)
"""The instant the seeded history ends: every version starts before it."""
HISTORY_START = datetime(2023, 12, 1, tzinfo=UTC)
REPS = 1000
TEAMS = 100
MANAGERS = 10
REGIONS = ("East", "West", "EMEA", "APAC")
MOVE_DAY = date(2025, 7, 1)
"""The day some reps move team (every 50th rep, from rep 7): past periods keep the old team."""
STAGES = (
    # name, order, probability, category, status
    ("Prospecting", 0, Decimal(10), "pipeline", "open"),
    ("Qualification", 1, Decimal(25), "pipeline", "open"),
    ("Proposal", 2, Decimal(50), "best_case", "open"),
    ("Negotiation", 3, Decimal(75), "commit", "open"),
    ("Won", 4, Decimal(100), "closed", "won"),
    ("Lost", 5, Decimal(0), "omitted", "lost"),
)
CHUNK = 50_000
"""Deals per INSERT: a statement small enough to show progress, large enough to be cheap."""
SEED_TAG = "app://bench-forecast-queries"


@dataclass(frozen=True)
class Seeded:
    deals: int
    versions: int
    seconds: float
    database_bytes: int


def _hash(part: int) -> str:
    """A non-negative draw for deal `n`, distinct per `part`."""
    return f"abs(hashint8(n * 16 + {part})::bigint)"


_VERSIONS_SQL = f"""
WITH d AS (
    SELECT n,
        'deal-' || lpad(n::text, 8, '0') AS deal_id,
        $3::timestamptz + ({_hash(1)} % $5) * interval '1 minute' AS created,
        (14 + {_hash(2)} % 121)::int AS cycle,
        (4 + {_hash(3)} % 13)::int AS nv,
        {_hash(4)} % 100 AS roll,
        {_hash(5)} % {REPS} AS owner,
        (ARRAY[1200, 4800, 18000, 60000])[1 + {_hash(6)} % 4]::numeric AS price,
        {_hash(7)} AS h7,
        {_hash(8)} % 25 = 0 AS moves,
        {_hash(9)} % 20 = 0 AS eur
    FROM generate_series($1::int, $2::int - 1) AS n
), e AS (
    SELECT d.*,
        created + cycle * interval '1 day' AS ends,
        (created + cycle * interval '1 day') < $4 AND roll < 90 AS closed
    FROM d
), s AS (
    SELECT e.*,
        (CASE WHEN closed THEN ends ELSE least(ends, $4 - interval '1 minute') END)
            - created AS span,
        created::date + (cycle * 6 / 10) AS first_close
    FROM e
), v AS (
    SELECT s.*, k, (k - 1)::numeric / (nv - 1) AS frac, k = nv AND closed AS closing
    FROM s, generate_series(1, s.nv) AS k
)
INSERT INTO forecast.deal_versions (
    deal_id, name, account_id, owner_id, amount, currency, stage, pipeline,
    forecast_category, close_date, created_at, deal_type, status, splits, deleted,
    properties, version, valid_from, sequence, event_source, event_id, valid_to)
SELECT
    deal_id,
    'Deal ' || n,
    'acct-' || lpad((h7 % 50000)::text, 6, '0'),
    'rep-' || lpad((CASE WHEN moves AND frac >= 0.5
                         THEN (owner + 1 + h7 % {REPS - 1}) % {REPS}
                         ELSE owner END)::text, 4, '0'),
    round(price * (0.8 + 0.1 * ((floor(frac * 2) + h7) % 5)), 2),
    CASE WHEN eur THEN 'EUR' ELSE 'USD' END,
    CASE WHEN closing THEN CASE WHEN roll < 40 THEN 'Won' ELSE 'Lost' END
         ELSE (ARRAY['Prospecting', 'Qualification', 'Proposal', 'Negotiation'])
              [1 + least(3, floor(frac * 4))::int] END,
    'default',
    CASE WHEN closing THEN CASE WHEN roll < 40 THEN 'closed' ELSE 'omitted' END
         WHEN k = 1 THEN NULL
         ELSE (ARRAY['pipeline', 'best_case', 'commit'])[1 + least(2, floor(frac * 3))::int]
    END,
    CASE WHEN closing THEN ends::date
         ELSE first_close + ((ends::date - first_close) * floor(frac * 3) / 3)::int END,
    created,
    NULL,
    CASE WHEN closing THEN CASE WHEN roll < 40 THEN 'won' ELSE 'lost' END ELSE 'open' END,
    NULL,
    false,
    '{{}}'::jsonb,
    k,
    created + span * frac,
    k,
    '{SEED_TAG}',
    'deal:' || deal_id || ':h' || k,
    CASE WHEN k < nv THEN created + span * (k::numeric / (nv - 1)) END
FROM v
"""

_DEALS_SQL = """
INSERT INTO forecast.deals (
    deal_id, name, account_id, owner_id, amount, currency, stage, pipeline,
    forecast_category, close_date, created_at, deal_type, status, splits, deleted,
    properties, version, valid_from, sequence, event_source, event_id, updated_at)
SELECT deal_id, name, account_id, owner_id, amount, currency, stage, pipeline,
    forecast_category, close_date, created_at, deal_type, status, splits, deleted,
    properties, version, valid_from, sequence, event_source, event_id, valid_from
FROM forecast.deal_versions WHERE valid_to IS NULL
"""


def _rep(r: int) -> str:
    return f"rep-{r:04d}"


def _team(t: int) -> str:
    return f"team-{t:03d}"


async def _hierarchy(conn: asyncpg.Connection) -> None:
    """100 teams (10 per manager, a region per manager), 1,000 reps (10 per team), and
    every 50th rep moved to the next team on MOVE_DAY."""
    start = HISTORY_START.date().replace(month=1, day=1)
    teams = [
        (
            _team(t),
            start,
            None,
            f"Team {t}",
            None,
            f"mgr-{t // 10}",
            f"Manager {t // 10}",
            REGIONS[(t // 10) % len(REGIONS)],
            SEED_TAG,
            f"team:{t}",
        )
        for t in range(TEAMS)
    ]
    await conn.copy_records_to_table(
        "teams",
        schema_name="forecast",
        records=teams,
        columns=[
            "team_id",
            "valid_from",
            "valid_to",
            "name",
            "parent_team_id",
            "manager_id",
            "manager_name",
            "region",
            "event_source",
            "event_id",
        ],
    )
    reps: list[tuple[object, ...]] = []
    for r in range(REPS):
        team = r // (REPS // TEAMS)
        row = (_rep(r), f"Rep {r}", None, True, SEED_TAG)
        if r % 50 == 7:
            reps.append((*row, _team(team), start, MOVE_DAY, f"rep:{r}:1"))
            reps.append((*row, _team((team + 1) % TEAMS), MOVE_DAY, None, f"rep:{r}:2"))
        else:
            reps.append((*row, _team(team), start, None, f"rep:{r}:1"))
    await conn.copy_records_to_table(
        "rep_assignments",
        schema_name="forecast",
        records=reps,
        columns=[
            "rep_id",
            "name",
            "email",
            "active",
            "event_source",
            "team_id",
            "valid_from",
            "valid_to",
            "event_id",
        ],
    )


def _quarters() -> list[tuple[date, date]]:
    out = []
    for year in range(HISTORY_START.year, NOW.year + 2):
        for q in range(4):
            first = date(year, 3 * q + 1, 1)
            last = date(year + (q == 3), (3 * q + 3) % 12 + 1, 1).toordinal() - 1
            out.append((first, date.fromordinal(last)))
    return out


async def _quotas(conn: asyncpg.Connection) -> None:
    """A quota per rep and per team for every quarter of the history, set the day before."""
    rows: list[tuple[str, str | None, str | None, date, date, Decimal, datetime]] = []
    for first, last in _quarters():
        at = datetime(first.year, first.month, first.day, tzinfo=UTC)
        label = f"{first.year}Q{(first.month - 1) // 3 + 1}"
        for r in range(REPS):
            rows.append((f"q-{_rep(r)}-{label}", _rep(r), None, first, last, Decimal(250_000), at))
        for t in range(TEAMS):
            rows.append(
                (f"q-{_team(t)}-{label}", None, _team(t), first, last, Decimal(2_500_000), at)
            )
    await conn.copy_records_to_table(
        "quotas",
        schema_name="forecast",
        records=[(*r, "USD", 0, SEED_TAG, r[0]) for r in rows],
        columns=[
            "quota_id",
            "rep_id",
            "team_id",
            "period_start",
            "period_end",
            "amount",
            "event_time",
            "currency",
            "sequence",
            "event_source",
            "event_id",
        ],
    )


async def _stage_config(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO forecast.forecast_settings (id, fiscal_year_start_month, default_pipeline) "
        "VALUES (1, 1, 'default')"
    )
    await conn.copy_records_to_table(
        "stage_config",
        schema_name="forecast",
        records=[
            ("default", 0, name, order, probability, category, status, [])
            for name, order, probability, category, status in STAGES
        ],
        columns=[
            "pipeline",
            "pipeline_position",
            "stage",
            "stage_order",
            "probability",
            "forecast_category",
            "status",
            "required_fields",
        ],
    )


async def seeded_deals(dsn: str) -> int:
    """How many deals a previous run seeded (0 for an empty database)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM forecast.deals"))
    finally:
        await conn.close()


async def seed(dsn: str, *, deals: int, progress: bool = True) -> Seeded:
    """Fill an empty, migrated database; VACUUM ANALYZE it so that plans and index-only
    scans see it as a settled database would be."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        minutes = int((NOW - HISTORY_START).total_seconds() // 60) - 60 * 24 * 14
        async with conn.transaction():  # all or nothing: a kept folder is never half seeded
            await _hierarchy(conn)
            await _quotas(conn)
            await _stage_config(conn)
            for lo in range(0, deals, CHUNK):
                hi = min(deals, lo + CHUNK)
                await conn.execute(_VERSIONS_SQL, lo, hi, HISTORY_START, NOW, minutes)
                if progress:
                    done = time.perf_counter() - started
                    print(f"  seeded {hi:,}/{deals:,} deals ({done:.0f}s)", flush=True)
            await conn.execute(_DEALS_SQL)
        await conn.execute("VACUUM ANALYZE")
        versions = int(await conn.fetchval("SELECT count(*) FROM forecast.deal_versions"))
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return Seeded(deals, versions, time.perf_counter() - started, size)
