"""All SQL of the summary: bringing `stage_visits` and `deal_creations` up to date with the
deals. Functions take a session inside a transaction, which the caller commits.

Which deals to summarise again is read from `forecast.deals.updated_at` (indexed), which
the apply path sets to `now()` whenever it writes a deal's current row, so whenever any of
the deal's versions changes; nothing is added to that path. `now()` is its transaction's
start, so a transaction still running when a catch-up reads the deals may commit rows
dated before that catch-up later: the mark (`through`) therefore never passes the start of
a transaction in progress (`pg_stat_activity.xact_start` of the database's client
backends, which must log in as this role, or this role must be allowed to read all
statistics), nor `MARGIN` before the catch-up, as a transaction is listed there a moment
after its start. Deals dated at or after the mark are summarised again by the next
catch-up, which is harmless: summarising is a function of the deal's rows alone.
Catch-ups run one at a time (a transaction-level advisory lock), so a read route that runs
one before it aggregates answers from everything committed before it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MARK = "deals"
LOCK = 0x5A1E5_0B5
"""The advisory lock key that makes catch-ups take turns."""
CHUNK = 10_000
"""Deals per statement: a backfill of every deal is many chunks of one transaction."""
MARGIN = timedelta(seconds=1)
"""How long before a catch-up a transaction may have started and not be listed yet as in
progress (the time between a statement's start and its backend's report of it, which is
microseconds; a second also covers a backend descheduled in between). Deals changed in
the last `MARGIN` are summarised once more by the next catch-up."""

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_RUNNING = text(
    "SELECT statement_timestamp() AS checked_at, min(xact_start) AS oldest "
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
_MARK = text("SELECT through FROM forecast.summary_marks WHERE name = :name")
_SET_MARK = text(
    "INSERT INTO forecast.summary_marks (name, through, checked_at) "
    "VALUES (:name, :through, :checked_at) ON CONFLICT (name) DO UPDATE "
    "SET through = EXCLUDED.through, checked_at = EXCLUDED.checked_at"
)
_EVERY_DEAL = text("SELECT deal_id FROM forecast.deals ORDER BY deal_id")
_CHANGED = text("SELECT deal_id FROM forecast.deals WHERE updated_at >= :through ORDER BY deal_id")

_IDS = "d.deal_id = ANY(CAST(:ids AS text[]))"
_FORGET_VISITS = text("DELETE FROM forecast.stage_visits WHERE deal_id = ANY(CAST(:ids AS text[]))")
# A visit starts at a version whose stage differs from the stage of the version before
# (versions without a stage left out, as `metrics.figures` merges a path; names compared
# without regard to case, as everywhere in the metrics), ends where the next visit starts,
# and its days are (seconds between the two) / 86400 in double precision, as
# `figures.stage_totals` measures them. `later_stages` holds lower-case names, which the
# metrics match against the lower-case names of the configured stages.
_VISITS = text(
    f"""
INSERT INTO forecast.stage_visits
    (deal_id, visit, close_date, owner_id, currency, stage, entered_at, days, first_visit,
     later_stages)
SELECT deal_id, visit, close_date, owner_id, currency, stage, valid_from,
    CAST(extract(epoch FROM left_at) - extract(epoch FROM valid_from) AS double precision)
        / CAST(86400 AS double precision),
    first_visit,
    CASE WHEN first_visit THEN coalesce(later, CAST('{{}}' AS text[])) END
FROM (
    SELECT steps.*,
        row_number() OVER deal AS visit,
        lead(valid_from) OVER deal AS left_at,
        row_number() OVER (PARTITION BY deal_id, lower(stage) ORDER BY version) = 1 AS first_visit,
        array_agg(lower(stage)) OVER (deal ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
            AS later
    FROM (
        SELECT v.deal_id, v.version, v.stage, v.valid_from, d.close_date, d.owner_id,
            d.currency,
            lag(v.stage) OVER (PARTITION BY v.deal_id ORDER BY v.version) AS previous
        FROM forecast.deals AS d
        JOIN forecast.deal_versions AS v ON v.deal_id = d.deal_id
        WHERE {_IDS} AND d.deleted IS FALSE AND d.status IN ('won', 'lost')
            AND d.close_date IS NOT NULL AND v.stage IS NOT NULL
    ) AS steps
    WHERE lower(previous) IS DISTINCT FROM lower(stage)
    WINDOW deal AS (PARTITION BY deal_id ORDER BY version)
) AS visits
"""
)
_FORGET_CREATIONS = text(
    "DELETE FROM forecast.deal_creations AS c USING forecast.deals AS d "
    f"WHERE {_IDS} AND c.deal_id = d.deal_id "
    "AND (d.deleted IS NOT FALSE OR d.created_at IS NULL)"
)
# Rewritten only when something differs (the amount compared as written, so that 100.50
# replaces 100.5): a deal updated while open keeps its row, and writes no dead tuple.
_CREATIONS = text(
    f"""
INSERT INTO forecast.deal_creations AS c (deal_id, created_on, owner_id, currency, amount)
SELECT d.deal_id, CAST(timezone('UTC', d.created_at) AS date), first.owner_id,
    first.currency, first.amount
FROM forecast.deals AS d
CROSS JOIN LATERAL (
    SELECT v.owner_id, v.currency, v.amount FROM forecast.deal_versions AS v
    WHERE v.deal_id = d.deal_id ORDER BY v.version LIMIT 1
) AS first
WHERE {_IDS} AND d.deleted IS FALSE AND d.created_at IS NOT NULL
ON CONFLICT (deal_id) DO UPDATE SET created_on = EXCLUDED.created_on,
    owner_id = EXCLUDED.owner_id, currency = EXCLUDED.currency, amount = EXCLUDED.amount
WHERE (c.created_on, c.owner_id, c.currency, CAST(c.amount AS text))
    IS DISTINCT FROM (EXCLUDED.created_on, EXCLUDED.owner_id, EXCLUDED.currency,
        CAST(EXCLUDED.amount AS text))
"""
)


@dataclass(frozen=True, slots=True)
class Running:
    """When the transactions in progress were listed (`checked_at`) and the earliest start
    among them (`oldest`): the mark may move up to the earlier of `oldest` and
    `checked_at - MARGIN`, provided the deals are read no earlier than the listing."""

    checked_at: datetime
    oldest: datetime | None


async def running(session: AsyncSession) -> Running:
    row = (await session.execute(_RUNNING)).one()
    return Running(row.checked_at, row.oldest)


async def catch_up(session: AsyncSession, *, listed: Running | None = None) -> int:
    """Summarise again every deal changed since the mark, and move the mark; the number of
    deals summarised. Waits for a catch-up running elsewhere to end first.

    `listed`, when given, is a listing of the transactions in progress taken before this
    transaction's snapshot: what a REPEATABLE READ transaction passes, whose deals are read
    as of its first statement, not as of this catch-up's (`metrics.reading`). The mark is
    written before the deals are summarised: in such a transaction, a catch-up committed
    since its snapshot then fails this one at once with a serialization failure (the mark
    row changed), rather than at a visit it wrote too (a duplicate key)."""
    await session.execute(_LOCK, {"key": LOCK})
    now = listed or await running(session)
    mark = (await session.execute(_MARK, {"name": MARK})).one_or_none()
    await session.execute(
        _SET_MARK,
        {
            "name": MARK,
            "through": _earliest(now.oldest, now.checked_at - MARGIN),
            "checked_at": now.checked_at,
        },
    )
    through = None if mark is None else mark.through
    changed = _EVERY_DEAL if through is None else _CHANGED.bindparams(through=through)
    deal_ids = list((await session.execute(changed)).scalars())
    for start in range(0, len(deal_ids), CHUNK):
        await summarise(session, deal_ids=deal_ids[start : start + CHUNK])
    return len(deal_ids)


async def summarise(session: AsyncSession, *, deal_ids: Sequence[str]) -> None:
    """The summary rows of these deals, rebuilt from their current rows and versions."""
    ids = {"ids": list(deal_ids)}
    await session.execute(_FORGET_VISITS, ids)
    await session.execute(_VISITS, ids)
    await session.execute(_FORGET_CREATIONS, ids)
    await session.execute(_CREATIONS, ids)


def _earliest(oldest: datetime | None, bound: datetime) -> datetime:
    return bound if oldest is None else min(oldest, bound)
