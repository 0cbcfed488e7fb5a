"""Accuracy of forecasts against actuals: pure arithmetic, no I/O.

For each closed period, a forecast (a snapshot's call, or its computed roll-up such as
commit + closed) is compared with the actual closed-won amount of that period:
- `error` = forecast - actual (money), `error_pct` = error / actual (None when actual is 0:
  the percentage error is undefined there, the absolute one is not);
- across forecasts: `bias` = mean signed `error_pct` over the forecasts where it is
  defined (positive: over-forecasting, "happy ears"; negative: sandbagging), so a
  forecast of a period that closed nothing has no say in it; `wape` = sum |error| / sum
  actual, which stays defined when single periods have no actuals (Hyndman & Koehler:
  prefer it to MAPE); `hit_rate_5` / `hit_rate_10` = the share of ALL forecasts within
  5 % / 10 % of their actual, where a forecast of an actual 0 is a hit only when it is 0
  too (no tolerance is a share of nothing): leaving such forecasts out would let a group
  that forecast money where nothing closed look as if it always hit.
Ratios are rounded half-even to 4 places (0.0512 is 5.12 %); None when undefined.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.forecast_worker.rollup.figures import ratio

ZERO = Decimal(0)
FIVE_PCT = Decimal("0.05")
TEN_PCT = Decimal("0.10")


@dataclass(frozen=True)
class Outcome:
    """One forecast of one period against its actual."""

    forecast: Decimal
    actual: Decimal

    @property
    def error(self) -> Decimal:
        return self.forecast - self.actual

    @property
    def error_pct(self) -> Decimal | None:
        return ratio(self.error, self.actual)


@dataclass(frozen=True)
class Accuracy:
    forecasts: int
    """How many outcomes were measured (several per period: one per snapshot)."""
    bias: Decimal | None
    wape: Decimal | None
    hit_rate_5: Decimal | None
    hit_rate_10: Decimal | None


def accuracy(outcomes: Iterable[Outcome]) -> Accuracy:
    items = list(outcomes)
    total_actual = sum((o.actual for o in items), ZERO)
    total_error = sum((abs(o.error) for o in items), ZERO)
    exact_pcts = [o.error / o.actual for o in items if o.actual != 0]
    return Accuracy(
        forecasts=len(items),
        bias=ratio(sum(exact_pcts, ZERO), Decimal(len(exact_pcts))),
        wape=ratio(total_error, total_actual),
        hit_rate_5=_hit_rate(items, FIVE_PCT),
        hit_rate_10=_hit_rate(items, TEN_PCT),
    )


def _hit(outcome: Outcome, within: Decimal) -> bool:
    """Judged on the exact percentage, so a 5.004 % miss is not a hit by rounding; against
    an actual 0 only an exact 0 hits."""
    if outcome.actual == 0:
        return outcome.forecast == 0
    return abs(outcome.error / outcome.actual) <= within


def _hit_rate(items: list[Outcome], within: Decimal) -> Decimal | None:
    hits = sum(1 for o in items if _hit(o, within))
    return ratio(Decimal(hits), Decimal(len(items)))
