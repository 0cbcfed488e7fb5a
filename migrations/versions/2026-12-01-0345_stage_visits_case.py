"""stage visits case: the summary's stage visits with stage names compared without case

Revision ID: 4e9a2c7b1d05
Revises: 7c1e4a9d2b60
Create Date: 2026-12-01 03:45:00

The summariser now compares stage names without regard to case (where a visit starts,
which visit is a deal's first to a stage) and keeps `later_stages` in lower case, which
the metrics match against the lower-case configured names. Only what that changes is
rewritten, in this transaction and under the summariser's lock (no catch-up interleaves):

- the deals whose visits hold one stage in two spellings (`Propose`, `PROPOSE`): the only
  ones whose visits or first visits change, as with one spelling per name comparing with
  or without case is the same. Their visits are rebuilt from their versions, as the
  summariser builds them.
- every other first visit with an upper-case letter in `later_stages`: that array lowered
  in place, nothing else about the visit changes.

No table, column or index changes. Downgrade forgets the summary's mark instead, so the
summariser of the revision before rebuilds every deal's visits with its own rules on its
next catch-up.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '4e9a2c7b1d05'
down_revision: str | None = '7c1e4a9d2b60'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOCK = 'SELECT pg_advisory_xact_lock(1511936181)'
"""`summary.repository.LOCK`, which catch-ups take."""
_SPELLED_TWICE = """
CREATE TEMPORARY TABLE stage_visits_recased ON COMMIT DROP AS
SELECT deal_id FROM forecast.stage_visits
GROUP BY deal_id
HAVING count(DISTINCT stage) > count(DISTINCT lower(stage))
"""
_FORGET = """
DELETE FROM forecast.stage_visits
WHERE deal_id IN (SELECT deal_id FROM stage_visits_recased)
"""
# `summary.repository._VISITS` as of this revision, for the deals above.
_VISITS = """
INSERT INTO forecast.stage_visits
    (deal_id, visit, close_date, owner_id, currency, stage, entered_at, days, first_visit,
     later_stages)
SELECT deal_id, visit, close_date, owner_id, currency, stage, valid_from,
    CAST(extract(epoch FROM left_at) - extract(epoch FROM valid_from) AS double precision)
        / CAST(86400 AS double precision),
    first_visit,
    CASE WHEN first_visit THEN coalesce(later, CAST('{}' AS text[])) END
FROM (
    SELECT steps.*,
        row_number() OVER deal AS visit,
        lead(valid_from) OVER deal AS left_at,
        row_number() OVER (PARTITION BY deal_id, lower(stage) ORDER BY version) = 1
            AS first_visit,
        array_agg(lower(stage)) OVER (deal ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
            AS later
    FROM (
        SELECT v.deal_id, v.version, v.stage, v.valid_from, d.close_date, d.owner_id,
            d.currency,
            lag(v.stage) OVER (PARTITION BY v.deal_id ORDER BY v.version) AS previous
        FROM forecast.deals AS d
        JOIN forecast.deal_versions AS v ON v.deal_id = d.deal_id
        WHERE d.deal_id IN (SELECT deal_id FROM stage_visits_recased)
            AND d.deleted IS FALSE AND d.status IN ('won', 'lost')
            AND d.close_date IS NOT NULL AND v.stage IS NOT NULL
    ) AS steps
    WHERE lower(previous) IS DISTINCT FROM lower(stage)
    WINDOW deal AS (PARTITION BY deal_id ORDER BY version)
) AS visits
"""
# An array's text form has an upper-case letter exactly when one of its names has (the
# braces, commas, quotes and backslashes around them have no case).
_LOWER_LATER = """
UPDATE forecast.stage_visits
SET later_stages = ARRAY(
    SELECT lower(s) FROM unnest(later_stages) WITH ORDINALITY AS u(s, n) ORDER BY n
)
WHERE later_stages IS NOT NULL
    AND CAST(later_stages AS text) <> lower(CAST(later_stages AS text))
"""


def upgrade() -> None:
    op.execute(_LOCK)
    op.execute(_SPELLED_TWICE)
    op.execute(_FORGET)
    op.execute(_VISITS)
    op.execute('DROP TABLE stage_visits_recased')
    op.execute(_LOWER_LATER)


def downgrade() -> None:
    op.execute(_LOCK)
    op.execute("DELETE FROM forecast.summary_marks WHERE name = 'deals'")
