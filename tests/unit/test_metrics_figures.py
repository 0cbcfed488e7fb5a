"""Pipeline metrics: worked cases, and the published figures of the real dataset."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.forecast_worker.metrics.figures import StageFigures, velocity
from tests.conftest import DATASET_DIR
from tests.support.maven_expected import pipeline_rows
from tests.support.metrics_reference import ClosedDeal, StageVisit, outcomes, stage_figures

D = Decimal
T0 = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def closed(won: bool, amount: str, days: int) -> ClosedDeal:
    return ClosedDeal(won, D(amount), T0, T0.date() + timedelta(days=days))


def test_outcomes_of_a_handful_of_deals() -> None:
    out = outcomes([closed(True, "100", 10), closed(True, "300", 20), closed(False, "600", 40)])
    assert (out.won_count, out.lost_count) == (2, 1)
    assert out.win_rate == D("0.6667")
    assert out.win_rate_value == D("0.4000")
    assert (out.won_amount, out.avg_won_amount) == (D(400), D("200.00"))
    assert (out.cycle_days_median, out.cycle_days_mean) == (D("20.00"), D("23.33"))
    assert velocity(30, out) == D("171.43")  # 30 x 400 x 3 / (3 x 70), exactly


def test_nothing_closed_measures_nothing() -> None:
    out = outcomes([])
    assert (out.win_rate, out.win_rate_value, out.avg_won_amount) == (None, None, None)
    assert (out.cycle_days_median, out.cycle_days_mean) == (None, None)
    assert velocity(10, out) is None


def test_a_deal_without_a_creation_time_counts_but_has_no_cycle() -> None:
    out = outcomes([ClosedDeal(True, D(5), None, date(2026, 2, 1)), closed(False, "5", 4)])
    assert (out.won_count, out.lost_count, out.cycle_days_mean) == (1, 1, D("4.00"))


def visits(*stages_and_days: tuple[str, float]) -> list[StageVisit]:
    return [StageVisit(s, T0 + timedelta(days=d)) for s, d in stages_and_days]


ORDER = ("qualify", "propose", "negotiate", "won")


def test_stage_conversion_and_days() -> None:
    paths = [
        visits(("qualify", 0), ("propose", 4), ("negotiate", 10), ("won", 12)),
        visits(("qualify", 0), ("propose", 2), ("lost", 3)),
        visits(("qualify", 0), ("qualify", 1), ("lost", 8)),
        visits(("qualify", 0), ("negotiate", 6)),  # skipped a stage: still advanced
        visits(("propose", 0)),  # still in propose: no duration yet
    ]
    by_stage = {f.stage: f for f in stage_figures(paths, ORDER)}
    assert by_stage["qualify"] == StageFigures("qualify", 4, 3, D("0.7500"), D("5.00"))
    assert by_stage["propose"] == StageFigures("propose", 3, 1, D("0.3333"), D("3.50"))
    assert by_stage["negotiate"] == StageFigures("negotiate", 2, 1, D("0.5000"), D("2.00"))
    assert by_stage["won"] == StageFigures("won", 1, 0, D("0.0000"), None)


def test_the_published_figures_of_the_real_dataset() -> None:
    """The dataset's README states its win rate, won value, mean won deal and median cycle
    (computed by its author, not by us): our arithmetic must give the same."""
    if not (DATASET_DIR / "sales_pipeline.csv").exists():
        pytest.skip(f"the CRM dataset is not at {DATASET_DIR} (../shared/datasets)")
    rows = [r for r in pipeline_rows(DATASET_DIR) if r.stage in ("Won", "Lost")]
    out = outcomes(
        ClosedDeal(
            won=r.stage == "Won",
            amount=r.close_value or D(0),
            created_at=datetime.combine(r.engage_date, datetime.min.time(), UTC)
            if r.engage_date
            else None,
            close_date=r.close_date,
        )
        for r in rows
    )
    assert (out.won_count, out.lost_count) == (4238, 2473)
    assert out.win_rate == D("0.6315")  # 4,238 / 6,711 = 63.2 %
    assert out.won_amount == D(10_005_534)
    assert out.avg_won_amount is not None
    assert round(out.avg_won_amount) == 2361
    assert out.cycle_days_median == D("45.00")


def test_stage_names_are_compared_without_case() -> None:
    # The same paths as above in other spellings: the same figures, under the order's names.
    paths = [
        visits(("Qualify", 0), ("PROPOSE", 4), ("Negotiate", 10), ("WON", 12)),
        visits(("QUALIFY", 0), ("propose", 2), ("Lost", 3)),
        visits(("qualify", 0), ("Qualify", 1), ("lost", 8)),  # one visit of 8 days
        visits(("Qualify", 0), ("NEGOTIATE", 6)),
        visits(("Propose", 0)),
    ]
    order = ("Qualify", "Propose", "Negotiate", "Won")
    by_stage = {f.stage: f for f in stage_figures(paths, order)}
    assert by_stage["Qualify"] == StageFigures("Qualify", 4, 3, D("0.7500"), D("5.00"))
    assert by_stage["Propose"] == StageFigures("Propose", 3, 1, D("0.3333"), D("3.50"))
    assert by_stage["Negotiate"] == StageFigures("Negotiate", 2, 1, D("0.5000"), D("2.00"))
    assert by_stage["Won"] == StageFigures("Won", 1, 0, D("0.0000"), None)
