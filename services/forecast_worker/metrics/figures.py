"""Pipeline metrics from closed deals and their stage paths: pure, no I/O.

Over the deals closed (won or lost) in a range:
- `win_rate` = won / (won + lost) by count, `win_rate_value` the same by amount;
- `won_amount`, `avg_won_amount`;
- cycle days, from the deal's `created_at` to its close date, as whole days between the
  two UTC calendar dates (a deal created and closed the same day has a cycle of 0):
  `cycle_days_median` and `cycle_days_mean`;
- `velocity`, the textbook sales velocity per day: open deals x average won amount x
  win rate / mean cycle days (None where any factor is undefined).

Stage conversion and time in stage come from each deal's stage path (the stages its
versions went through, in time order, with when it entered each): the conversion from
stage A is the share of the deals that entered A and later entered any stage after A in
the pipeline's order (a won stage included); the days in A are measured per visit, from
entering A to entering the next stage, for visits that ended (a deal still in A does not
count yet), and the median is reported.

Ratios are rounded half-even to 4 places, medians and means of days to 2, and every
figure that has nothing to measure is None.

Each figure is computed in two steps: totals (counts, sums and the two middle values of
what has a median, the same value twice for an odd count), then the figure from the
totals. The route takes the totals from PostgreSQL (`metrics.repository`, over the deals
and the summary of their stage visits), which aggregates a year of closed deals where they
are; the tests' Python reference (`tests/support/metrics_reference.py`) totals every deal's
rows itself; both end in `outcomes_from_totals` and `stage_figures_from_totals`, so the
ratios, medians and rounding are defined here once.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from services.forecast_worker.rollup.figures import ratio

ZERO = Decimal(0)
DAY_PLACES = Decimal("0.01")


Middle = tuple[float, float]
"""The lower and upper middle values of a sorted sample (equal for an odd count): its
median is their mean, as `statistics.median` computes it over the whole sample."""


@dataclass(frozen=True)
class OutcomeTotals:
    won_count: int
    lost_count: int
    won_amount: Decimal
    lost_amount: Decimal
    cycle_count: int
    cycle_days_sum: int
    cycle_middle: Middle | None


@dataclass(frozen=True)
class Outcomes:
    won_count: int
    lost_count: int
    win_rate: Decimal | None
    win_rate_value: Decimal | None
    won_amount: Decimal
    avg_won_amount: Decimal | None
    cycle_days_median: Decimal | None
    cycle_days_mean: Decimal | None
    cycle_count: int
    """How many of the deals have a cycle (a creation time and a close date)."""
    cycle_days_sum: int


def _days(value: float | Decimal) -> Decimal:
    return Decimal(value).quantize(DAY_PLACES, rounding=ROUND_HALF_EVEN)


def _median(values: Middle) -> Decimal:
    return _days(statistics.median(values))


def outcomes_from_totals(totals: OutcomeTotals) -> Outcomes:
    won_count, won_amount = totals.won_count, totals.won_amount
    closed = won_count + totals.lost_count
    cycles = totals.cycle_count
    return Outcomes(
        won_count=won_count,
        lost_count=totals.lost_count,
        win_rate=ratio(Decimal(won_count), Decimal(closed)),
        win_rate_value=ratio(won_amount, won_amount + totals.lost_amount),
        won_amount=won_amount,
        avg_won_amount=(won_amount / won_count).quantize(DAY_PLACES) if won_count else None,
        cycle_days_median=None if totals.cycle_middle is None else _median(totals.cycle_middle),
        cycle_days_mean=_days(Decimal(totals.cycle_days_sum) / cycles) if cycles else None,
        cycle_count=cycles,
        cycle_days_sum=totals.cycle_days_sum,
    )


def velocity(open_count: int, result: Outcomes) -> Decimal | None:
    """Sales velocity per day, from the exact sums rather than the rounded figures:
    open x (won amount / won) x (won / closed) / (cycle days / cycles), which is
    open x won amount x cycles / (closed x cycle days). None without a win or a cycle."""
    closed = result.won_count + result.lost_count
    if not result.won_count or not result.cycle_days_sum:
        return None
    value = open_count * result.won_amount * result.cycle_count / (closed * result.cycle_days_sum)
    return value.quantize(DAY_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class StageTotals:
    entered: int
    advanced: int
    days_middle: Middle | None
    """Of the durations of the stage's ended visits, in days."""


@dataclass(frozen=True)
class StageFigures:
    stage: str
    entered: int
    advanced: int
    conversion: Decimal | None
    median_days: Decimal | None


NOTHING_ENTERED = StageTotals(0, 0, None)


def stage_figures_from_totals(
    totals: Mapping[str, StageTotals], order: Sequence[str]
) -> list[StageFigures]:
    """One row per stage of `order`, in that order; a stage without totals entered none."""
    figures = []
    for stage in order:
        total = totals.get(stage, NOTHING_ENTERED)
        figures.append(
            StageFigures(
                stage=stage,
                entered=total.entered,
                advanced=total.advanced,
                conversion=ratio(Decimal(total.advanced), Decimal(total.entered)),
                median_days=None if total.days_middle is None else _median(total.days_middle),
            )
        )
    return figures
