"""The ceilings of `benchmarks.forecast_queries`: each read's aggregate written by hand as
one SQL statement, run with asyncpg (no ORM, no route, no Python-side classification).

They read the same tables and indexes as the code under test, so `ours / ceiling` says what
the service's own layers (SQL built by SQLAlchemy, the route, its Python work and JSON)
cost over the best a single statement does on this database in the same run."""

from __future__ import annotations

_RULES = """
rules(pipeline, stage, category, probability) AS (
    SELECT lower(pipeline), lower(stage), forecast_category, probability
    FROM forecast.stage_config
)"""

_TEAM_ON_DAY = """
h AS (
    SELECT rep_id, team_id FROM forecast.rep_assignments
    WHERE valid_from <= $3::date AND (valid_to IS NULL OR $3::date < valid_to)
)"""


def _rollup(source: str, extra: str) -> str:
    return f"""
WITH {_RULES}, {_TEAM_ON_DAY},
d AS (
    SELECT owner_id, currency, status, stage, pipeline, forecast_category,
        sum(coalesce(amount, 0)) AS amount, count(*) AS n
    FROM {source}
    WHERE NOT deleted AND close_date >= $1 AND close_date < $2 {extra}
    GROUP BY 1, 2, 3, 4, 5, 6
),
x AS (
    SELECT h.team_id AS grp, d.currency, d.status, d.amount, d.n,
        coalesce(d.forecast_category, r.category) AS cat, coalesce(r.probability, 0) AS p
    FROM d
    LEFT JOIN rules r
        ON r.pipeline = lower(coalesce(d.pipeline, 'default')) AND r.stage = lower(d.stage)
    LEFT JOIN h ON h.rep_id = d.owner_id
),
sums AS (
    SELECT grp, currency,
        sum(amount) FILTER (WHERE status = 'won') AS closed_won,
        sum(amount) FILTER (WHERE status = 'open' AND cat = 'commit') AS commit,
        sum(amount) FILTER (WHERE status = 'open' AND cat = 'best_case') AS best_case,
        sum(amount) FILTER (WHERE status = 'open' AND cat = 'pipeline') AS pipeline,
        sum(amount) FILTER (WHERE status = 'open' AND cat = 'omitted') AS omitted,
        sum(amount * p / 100) FILTER (WHERE status = 'open' AND cat IS NOT NULL) AS weighted,
        sum(n) FILTER (WHERE status = 'open' AND cat IS NOT NULL) AS open_count
    FROM x GROUP BY grp, currency
),
quota AS (
    SELECT team_id AS grp, currency, sum(amount) AS quota FROM forecast.quotas
    WHERE team_id IS NOT NULL AND period_start >= $1 AND period_end < $2 {{quota_extra}}
    GROUP BY 1, 2
)
SELECT * FROM sums FULL JOIN quota USING (grp, currency) ORDER BY grp, currency
"""


ROLLUP_CURRENT = _rollup("forecast.deals", "").replace("{quota_extra}", "")
"""$1 period start, $2 period end (exclusive), $3 hierarchy day."""

ROLLUP_AS_OF = _rollup(
    "forecast.deal_versions", "AND valid_from <= $4 AND (valid_to IS NULL OR valid_to > $4)"
).replace("{quota_extra}", "AND event_time <= $4")
"""As ROLLUP_CURRENT, $4 the instant."""

_VERSION = "deal_id, status, close_date, coalesce(amount, 0) AS amount, deleted"


def _valid_at(at: str) -> str:
    return f"valid_from <= {at} AND (valid_to IS NULL OR valid_to > {at})"


def _looked_up(at: str, wanted: str, found: str) -> str:
    return f"""
    SELECT v.* FROM (SELECT deal_id FROM {wanted} EXCEPT SELECT deal_id FROM {found}) m,
    LATERAL (SELECT {_VERSION} FROM forecast.deal_versions
             WHERE deal_id = m.deal_id AND {_valid_at(at)} OFFSET 0) v"""


WATERFALL = f"""
WITH pf AS (
    SELECT {_VERSION} FROM forecast.deal_versions
    WHERE close_date >= $1 AND close_date < $2 AND {_valid_at("$3")}
), pt AS (
    SELECT {_VERSION} FROM forecast.deal_versions
    WHERE close_date >= $1 AND close_date < $2 AND {_valid_at("$4")}
),
b AS (SELECT * FROM pf UNION ALL {_looked_up("$3", "pt", "pf")}),
a AS (SELECT * FROM pt UNION ALL {_looked_up("$4", "pf", "pt")}),
d AS (
    SELECT b.deal_id IS NOT NULL AS existed,
        coalesce(NOT b.deleted AND b.status = 'open' AND b.close_date >= $1
            AND b.close_date < $2, false) AS was,
        coalesce(NOT a.deleted AND a.status = 'open' AND a.close_date >= $1
            AND a.close_date < $2, false) AS now,
        b.amount AS before, a.amount AS after, a.status AS status_after
    FROM b FULL JOIN a ON a.deal_id = b.deal_id
)
SELECT
    sum(before) FILTER (WHERE was) AS start,
    sum(after) FILTER (WHERE now) AS "end",
    sum(after) FILTER (WHERE now AND NOT was AND NOT existed) AS created,
    sum(after) FILTER (WHERE now AND NOT was AND existed) AS pulled_in,
    sum(after) FILTER (WHERE was AND NOT now AND status_after = 'won') AS won,
    sum(after) FILTER (WHERE was AND NOT now AND status_after = 'lost') AS lost,
    sum(after) FILTER (WHERE was AND NOT now AND status_after = 'open') AS pushed_out,
    count(*) AS candidates
FROM d
"""
"""$1 period start, $2 period end (exclusive), $3 from, $4 to: each instant's versions in
the period from the close-date index, the other side of a deal in the period at one
instant alone looked up by id (the route's plan), then start, end and the entry / exit
buckets summed in SQL (increase / decrease, deletions and pass-through closes left out)."""

METRICS = """
WITH closed AS (
    SELECT d.deal_id, d.status, coalesce(d.amount, 0) AS amount,
        d.close_date - (d.created_at AT TIME ZONE 'UTC')::date AS cycle, a.team_id
    FROM forecast.deals d
    LEFT JOIN forecast.rep_assignments a ON a.rep_id = d.owner_id
        AND a.valid_from <= d.close_date AND (a.valid_to IS NULL OR d.close_date < a.valid_to)
    WHERE NOT d.deleted AND d.status IN ('won', 'lost') AND d.close_date BETWEEN $1 AND $2
)
SELECT team_id, count(*) FILTER (WHERE status = 'won') AS won_count,
    count(*) FILTER (WHERE status = 'lost') AS lost_count,
    sum(amount) FILTER (WHERE status = 'won') AS won_amount,
    avg(cycle) AS cycle_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY cycle) AS cycle_median
FROM closed GROUP BY team_id ORDER BY team_id
"""
"""$1 first, $2 last close date (inclusive): outcomes and cycle per team of the close day
(stage conversion and created pipeline left out: a floor for the route, not its equal)."""
