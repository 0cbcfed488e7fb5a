"""The top-down projection: rates learnt from past periods, applied to today's pipeline."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.projection.model import PastPeriod, learn, project, with_fallback

D = Decimal


def test_rates_pool_past_periods_by_value() -> None:
    history = learn(
        [
            PastPeriod({"commit": D(100), "pipeline": D(1000)}, {"commit": D(80)}, D(50)),
            PastPeriod(
                {"commit": D(300), "pipeline": D(1000)},
                {"commit": D(240), "pipeline": D(100)},
                D(150),
            ),
        ]
    )
    assert history.rates == {"commit": D("0.8000"), "pipeline": D("0.0500")}
    assert (history.expected_new, history.periods) == (D("100.00"), 2)


def test_projection_beside_the_roll_up() -> None:
    history = learn([PastPeriod({"commit": D(100)}, {"commit": D(90)}, D(20))])
    out = project(
        closed_won=D(500),
        open_by_stage={"commit": D(200), "discovery": D(70)},
        history=history,
        bottom_up=D(650),
    )
    assert (out.from_pipeline, out.expected_new, out.unprojected) == (
        D("180.00"),
        D("20.00"),
        D(70),
    )
    assert out.projected == D("700.00")
    assert out.gap == D("50.00")


def test_no_history_projects_only_what_is_closed() -> None:
    out = project(closed_won=D(10), open_by_stage={"x": D(5)}, history=learn([]), bottom_up=None)
    assert (out.projected, out.unprojected, out.gap) == (D(10), D(5), None)


money = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), money, min_size=1), money)
def test_a_history_where_everything_closed_projects_the_whole_pipeline(
    pipeline: dict[str, Decimal], closed: Decimal
) -> None:
    everything = PastPeriod({s: D(1) for s in pipeline}, {s: D(1) for s in pipeline})
    out = project(
        closed_won=closed, open_by_stage=pipeline, history=learn([everything]), bottom_up=None
    )
    assert out.projected == closed + sum(pipeline.values(), D(0))


def test_a_group_without_history_in_a_stage_takes_the_fallback_rate() -> None:
    own = learn([PastPeriod({"commit": D(100)}, {"commit": D(50)}, D(7))])
    company = learn(
        [PastPeriod({"commit": D(100), "pipeline": D(10)}, {"commit": D(90), "pipeline": D(1)})]
    )
    merged = with_fallback(own, company)
    assert merged.rates == {"commit": D("0.5000"), "pipeline": D("0.1000")}
    assert (merged.expected_new, merged.periods) == (D("7.00"), 1), "new business is the group's"
