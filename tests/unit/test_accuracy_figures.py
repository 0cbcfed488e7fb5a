"""Forecast accuracy: error, bias, WAPE and hit rates, including periods without actuals."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.accuracy.figures import Outcome, accuracy

D = Decimal


def test_one_period() -> None:
    o = Outcome(forecast=D(110), actual=D(100))
    assert (o.error, o.error_pct) == (D(10), D("0.1000"))


def test_several_periods() -> None:
    result = accuracy(
        [
            Outcome(D(104), D(100)),  # +4 %: within 5 and 10
            Outcome(D(90), D(100)),  # -10 %: within 10 only
            Outcome(D(150), D(100)),  # +50 %
            Outcome(D(20), D(0)),  # no actual: no percentage, a miss, counts in WAPE
        ]
    )
    assert result.forecasts == 4
    assert result.bias == D("0.1467")  # (0.04 - 0.10 + 0.50) / 3
    assert result.wape == D("0.2800")  # (4 + 10 + 50 + 20) / 300
    assert (result.hit_rate_5, result.hit_rate_10) == (D("0.2500"), D("0.5000"))


def test_against_nothing_closed_only_nothing_forecast_hits() -> None:
    result = accuracy([Outcome(D(0), D(0)), Outcome(D(1), D(0)), Outcome(D(100), D(100))])
    assert (result.hit_rate_5, result.hit_rate_10) == (D("0.6667"), D("0.6667"))
    assert result.bias == D(0), "only the forecast with an actual has a percentage"
    assert accuracy([Outcome(D(5), D(0))]).hit_rate_10 == D(0), "not left out: a miss"


def test_a_miss_just_over_five_percent_is_not_a_hit() -> None:
    result = accuracy([Outcome(D("105.004"), D(100))])
    assert (result.hit_rate_5, result.hit_rate_10) == (D("0.0000"), D("1.0000"))


def test_no_periods_measure_nothing() -> None:
    result = accuracy([])
    assert (result.bias, result.wape, result.hit_rate_5, result.hit_rate_10) == (None,) * 4


money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)


actuals = st.lists(money.filter(bool), min_size=1, max_size=20)


@given(actuals)
def test_a_perfect_forecast_is_perfectly_accurate(values: list[Decimal]) -> None:
    result = accuracy(Outcome(actual, actual) for actual in values)
    assert (result.bias, result.wape, result.hit_rate_5) == (D(0), D(0), D(1))


@given(actuals)
def test_over_forecasting_everywhere_has_positive_bias(values: list[Decimal]) -> None:
    result = accuracy(Outcome(actual * 2, actual) for actual in values)
    assert (result.bias, result.wape, result.hit_rate_10) == (D(1), D(1), D(0))
