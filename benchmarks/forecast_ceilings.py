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

WATERFALL = """
WITH b AS (
    SELECT deal_id FROM forecast.deal_versions
    WHERE close_date >= $1 AND close_date < $2
        AND valid_from <= $3 AND (valid_to IS NULL OR valid_to > $3)
), a AS (
    SELECT deal_id FROM forecast.deal_versions
    WHERE close_date >= $1 AND close_date < $2
        AND valid_from <= $4 AND (valid_to IS NULL OR valid_to > $4)
), ids AS (SELECT deal_id FROM b UNION SELECT deal_id FROM a),
sides AS (
    SELECT ids.deal_id,
        (v.valid_from <= $3 AND (v.valid_to IS NULL OR v.valid_to > $3)) AS at_from,
        NOT v.deleted AND v.status = 'open' AND v.close_date >= $1 AND v.close_date < $2
            AS in_p,
        v.status, coalesce(v.amount, 0) AS amount
    FROM ids JOIN forecast.deal_versions v ON v.deal_id = ids.deal_id
    WHERE (v.valid_from <= $3 AND (v.valid_to IS NULL OR v.valid_to > $3))
        OR (v.valid_from <= $4 AND (v.valid_to IS NULL OR v.valid_to > $4))
), per_deal AS (
    SELECT deal_id,
        bool_or(at_from AND in_p) AS was, bool_or(NOT at_from AND in_p) AS now,
        bool_or(at_from) AS existed,
        sum(amount) FILTER (WHERE at_from) AS before, sum(amount) FILTER (WHERE NOT at_from)
            AS after,
        max(status) FILTER (WHERE NOT at_from) AS status_after
    FROM sides GROUP BY deal_id
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
FROM per_deal
"""
"""$1 period start, $2 period end (exclusive), $3 from, $4 to: the candidates (a version in
the period at either instant), both sides, and the start, end and entry / exit buckets
(increase and decrease are the per-deal difference, left out)."""

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
