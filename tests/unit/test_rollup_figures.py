"""Roll-up arithmetic: the cumulative categories, attainment, gap and coverage."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.rollup.figures import RATIO_PLACES, GroupSums, figures, ratio

D = Decimal


def test_a_group_with_a_quota() -> None:
    out = figures(
        GroupSums(
            closed_won=D("40000"),
            commit=D("25000"),
            best_case=D("15000"),
            pipeline=D("60000"),
            omitted=D("5000"),
            weighted=D("31500.50"),
            open_count=12,
            quota=D("100000"),
        )
    )
    assert out.commit_plus_closed == D("65000")
    assert out.best_case_plus_commit_plus_closed == D("80000")
    assert out.open_pipeline == D("100000")
    assert out.attainment == D("0.4000")
    assert out.gap_to_quota == D("60000")
    assert out.coverage == D("0.6000")
    assert (out.weighted, out.open_count, out.omitted) == (D("31500.50"), 12, D("5000"))


@pytest.mark.parametrize(
    ("sums", "attainment", "gap", "coverage"),
    [
        pytest.param(GroupSums(closed_won=D(10)), None, None, None, id="no quota"),
        pytest.param(GroupSums(closed_won=D(10), quota=D(0)), None, D(-10), None, id="zero quota"),
        pytest.param(
            GroupSums(closed_won=D(10), quota=D(100)),
            D("0.1000"),
            D(90),
            None,
            id="no open pipeline",
        ),
        pytest.param(
            GroupSums(closed_won=D(150), commit=D(50), quota=D(100)),
            D("1.5000"),
            D(-50),
            D("-1.0000"),
            id="over quota",
        ),
    ],
)
def test_undefined_ratios_are_none(
    sums: GroupSums, attainment: Decimal | None, gap: Decimal | None, coverage: Decimal | None
) -> None:
    out = figures(sums)
    assert (out.attainment, out.gap_to_quota, out.coverage) == (attainment, gap, coverage)


def test_ratios_round_half_even_to_four_places() -> None:
    assert ratio(D(1), D(3)) == D("0.3333")
    assert ratio(D("0.00005"), D(1)) == D("0.0000")
    assert ratio(D("0.00015"), D(1)) == D("0.0002")


money = st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False)


@given(money, money, money, money, money, st.one_of(st.none(), money))
def test_cumulative_categories_and_gap_are_exact(
    won: Decimal,
    commit: Decimal,
    best: Decimal,
    pipe: Decimal,
    omitted: Decimal,
    quota: Decimal | None,
) -> None:
    out = figures(
        GroupSums(
            closed_won=won,
            commit=commit,
            best_case=best,
            pipeline=pipe,
            omitted=omitted,
            quota=quota,
        )
    )
    assert out.commit_plus_closed - out.closed_won == out.commit
    assert out.best_case_plus_commit_plus_closed - out.commit_plus_closed == out.best_case
    assert out.open_pipeline == pipe + best + commit
    if quota is None:
        assert (out.attainment, out.gap_to_quota, out.coverage) == (None, None, None)
    else:
        assert out.gap_to_quota == quota - won
        if quota:
            assert out.attainment is not None
            assert abs(out.attainment - won / quota) <= RATIO_PLACES / 2
