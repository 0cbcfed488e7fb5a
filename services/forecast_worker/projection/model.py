"""A top-down forecast from history: pure arithmetic, no I/O.

The method Gong and BoostUp describe, on our history: for each past period, look at the
same point of the period as today (day 30 of a quarter in a past quarter when we are on
day 30 now) and measure, per stage, how much of the open pipeline that was then due in
the period had closed won by its end (`won_share`, by value), and how much was won in
the period from deals created after that point (`new_won`). Averaged over the past
periods (pooled by value, so a large period weighs as much as its pipeline), these give

    projection = closed_won_so_far
               + sum over stages of rate[stage] x open pipeline now in that stage
               + mean new_won

which the API shows beside the bottom-up roll-up (the reps' categories) and the gap
between them. A stage with no history (no open pipeline at that point in any past
period) has no rate, and its pipeline is reported as `unprojected` rather than guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

from services.forecast_worker.rollup.figures import ratio

ZERO = Decimal(0)
CENT = Decimal("0.01")
"""Projected amounts are rounded to the cent."""
K = TypeVar("K", bound=Hashable)
"""What a rate is kept per: a stage name, or any finer cohort key (stage and due date)."""


@dataclass(frozen=True)
class PastPeriod(Generic[K]):
    """One past period seen from the same point of the period as today."""

    open_by_stage: Mapping[K, Decimal]
    won_by_stage: Mapping[K, Decimal]
    """Of `open_by_stage`, what had closed won by the period's end."""
    new_won: Decimal = ZERO
    """Won in the period from deals created after that point."""


@dataclass(frozen=True)
class History(Generic[K]):
    rates: dict[K, Decimal]
    expected_new: Decimal
    periods: int


@dataclass(frozen=True)
class Projection:
    closed_won: Decimal
    from_pipeline: Decimal
    expected_new: Decimal
    unprojected: Decimal
    projected: Decimal
    bottom_up: Decimal | None
    gap: Decimal | None = field(default=None)
    """projected - bottom_up: positive when history expects more than the reps call."""


def learn(periods: Iterable[PastPeriod[K]]) -> History[K]:
    opened: dict[K, Decimal] = defaultdict(lambda: ZERO)
    won: dict[K, Decimal] = defaultdict(lambda: ZERO)
    new_total = ZERO
    count = 0
    for period in periods:
        count += 1
        new_total += period.new_won
        for stage, amount in period.open_by_stage.items():
            opened[stage] += amount
            won[stage] += period.won_by_stage.get(stage, ZERO)
    rates = {
        stage: rate
        for stage, total in opened.items()
        if (rate := ratio(won[stage], total)) is not None
    }
    expected_new = (new_total / count).quantize(CENT) if count else ZERO
    return History(rates=rates, expected_new=expected_new, periods=count)


def with_fallback(own: History[K], fallback: History[K]) -> History[K]:
    """`own` with `fallback`'s rate for each key `own` has no history of: a rep's rates,
    completed by the company's where the rep never had pipeline in that stage. The expected
    new business stays `own`'s: it is the group's, not the company's."""
    return History(
        rates={**fallback.rates, **own.rates},
        expected_new=own.expected_new,
        periods=own.periods,
    )


def project(
    *,
    closed_won: Decimal,
    open_by_stage: Mapping[K, Decimal],
    history: History[K],
    bottom_up: Decimal | None,
) -> Projection:
    from_pipeline = ZERO
    unprojected = ZERO
    for stage, amount in open_by_stage.items():
        rate = history.rates.get(stage)
        if rate is None:
            unprojected += amount
        else:
            from_pipeline += (amount * rate).quantize(CENT)
    projected = closed_won + from_pipeline + history.expected_new
    return Projection(
        closed_won=closed_won,
        from_pipeline=from_pipeline,
        expected_new=history.expected_new,
        unprojected=unprojected,
        projected=projected,
        bottom_up=bottom_up,
        gap=None if bottom_up is None else projected - bottom_up,
    )
