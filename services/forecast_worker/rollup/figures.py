"""A group's roll-up figures from its sums: pure arithmetic, no I/O.

The query adds up, per group (rep, team, manager or region), the deals whose close date
lies in the period: won ones into `closed_won`, open ones into their forecast category
(the deal's own `forecast_category`, else its stage's) and into `weighted` (amount x
the stage's probability). Everything else is derived here, the same way for the live
roll-up, an `as_of` one, a snapshot and its backfill:

- `commit_plus_closed` = commit + closed_won, and
  `best_case_plus_commit_plus_closed` = best_case + commit + closed_won: the cumulative
  categories, as Salesforce's cumulative roll-ups show them;
- `open_pipeline` = pipeline + best_case + commit (omitted deals are not forecast);
- `attainment` = closed_won / quota; `gap_to_quota` = quota - closed_won (negative once
  over quota);
- `coverage` = (quota - closed_won) / open_pipeline, as the issue defines it: the share of
  the open pipeline that must still close to reach quota (below 1 the pipeline can cover
  the gap; 0 or less once quota is met).

Money stays exact `Decimal`; ratios are rounded half-even to `RATIO_PLACES` places, and
are None where they are undefined (no quota, or no open pipeline), never a float or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
RATIO_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class GroupSums:
    """What the roll-up query adds up for one group."""

    closed_won: Decimal = ZERO
    commit: Decimal = ZERO
    best_case: Decimal = ZERO
    pipeline: Decimal = ZERO
    omitted: Decimal = ZERO
    weighted: Decimal = ZERO
    open_count: int = 0
    quota: Decimal | None = None
    unmapped: Decimal = ZERO
    """Open deals whose stage the configuration does not know: listed, never forecast."""
    unmapped_count: int = 0


@dataclass(frozen=True)
class Figures:
    closed_won: Decimal
    commit: Decimal
    best_case: Decimal
    pipeline: Decimal
    omitted: Decimal
    commit_plus_closed: Decimal
    best_case_plus_commit_plus_closed: Decimal
    open_pipeline: Decimal
    weighted: Decimal
    open_count: int
    quota: Decimal | None
    attainment: Decimal | None
    gap_to_quota: Decimal | None
    coverage: Decimal | None
    unmapped: Decimal
    unmapped_count: int


def ratio(numerator: Decimal, denominator: Decimal | None) -> Decimal | None:
    if denominator is None or denominator == 0:
        return None
    return (numerator / denominator).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def figures(sums: GroupSums) -> Figures:
    open_pipeline = sums.pipeline + sums.best_case + sums.commit
    gap = None if sums.quota is None else sums.quota - sums.closed_won
    return Figures(
        closed_won=sums.closed_won,
        commit=sums.commit,
        best_case=sums.best_case,
        pipeline=sums.pipeline,
        omitted=sums.omitted,
        commit_plus_closed=sums.commit + sums.closed_won,
        best_case_plus_commit_plus_closed=sums.best_case + sums.commit + sums.closed_won,
        open_pipeline=open_pipeline,
        weighted=sums.weighted,
        open_count=sums.open_count,
        quota=sums.quota,
        attainment=ratio(sums.closed_won, sums.quota),
        gap_to_quota=gap,
        coverage=None if gap is None else ratio(gap, open_pipeline),
        unmapped=sums.unmapped,
        unmapped_count=sums.unmapped_count,
    )
