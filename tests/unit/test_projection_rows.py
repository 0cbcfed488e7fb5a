"""The projection's rows from summed history: fallbacks flagged, currencies apart, and a
company row learnt from everyone pooled."""

from __future__ import annotations

from decimal import Decimal

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.projection.repository import CohortRow, NewWonRow, PipelineRow
from services.forecast_worker.projection.rows import projection_rows
from services.forecast_worker.rollup.figures import GroupSums
from services.forecast_worker.rollup.repository import GroupRow
from tests.support.forecast_config import stage

D = Decimal


def test_rows_per_group_and_currency_then_the_company() -> None:
    rows = projection_rows(
        periods=[0, 1],
        cohorts=[
            CohortRow(0, "a", "EUR", "Engaging", "in_period", D(100), D(50)),
            CohortRow(1, "a", "EUR", "Engaging", "in_period", D(300), D(50)),
            CohortRow(0, "b", "EUR", "Proposal", "undated", D(200), D(200)),
            CohortRow(0, "b", "USD", "Proposal", "undated", D(10), D(0)),
        ],
        new_won=[NewWonRow(1, "a", "EUR", D(40)), NewWonRow(0, "b", "EUR", D(11))],
        pipeline=[
            PipelineRow("a", "EUR", "Engaging", "in_period", D(1000)),
            PipelineRow("a", "EUR", "Proposal", "undated", D(30)),
            PipelineRow("a", "EUR", "Proposal", "later", D(7)),
            PipelineRow("b", "USD", "Proposal", "undated", D(99)),
        ],
        sums=[
            GroupRow("a", "EUR", GroupSums(closed_won=D(5), commit=D(20), best_case=D(30))),
            GroupRow("c", "EUR", GroupSums(commit=D(1))),
        ],
    )
    by_key = {(r.scope, r.group, r.currency): r for r in rows}
    assert list(by_key) == [
        ("group", "a", "EUR"),
        ("group", "b", "EUR"),
        ("group", "b", "USD"),
        ("group", "c", "EUR"),
        ("company", None, "EUR"),
        ("company", None, "USD"),
    ]
    a = by_key[("group", "a", "EUR")]
    assert [(r.stage, r.due, r.rate, r.rate_source, r.projected) for r in a.rates] == [
        ("Engaging", "in_period", D("0.2500"), "own", D("250.00")),
        ("Proposal", "later", None, None, None),
        ("Proposal", "undated", D("1.0000"), "company", D("30.00")),
    ]
    assert (a.closed_won, a.from_pipeline, a.expected_new, a.unprojected) == (
        D(5),
        D("280.00"),
        D("20.00"),
        D(7),
    )
    assert (a.projected, a.bottom_up_commit, a.bottom_up_best_case) == (D("305.00"), D(25), D(55))
    assert (a.gap, a.gap_best_case, a.open_pipeline) == (D("280.00"), D("250.00"), D(1037))
    usd = by_key[("group", "b", "USD")]
    assert (usd.from_pipeline, usd.rates[0].rate_source) == (D("0.00"), "own"), "USD apart"
    c = by_key[("group", "c", "EUR")]
    assert (c.projected, c.bottom_up_commit, c.gap) == (D("0.00"), D(1), D("-1.00"))
    company = by_key[("company", None, "EUR")]
    # Pooled: Engaging 100/400 (only a had it), Proposal undated 200/200; new (11 + 40) / 2.
    assert (company.from_pipeline, company.expected_new, company.projected) == (
        D("280.00"),
        D("25.50"),
        D("310.50"),
    )
    assert {r.rate_source for r in company.rates if r.rate is not None} == {"own"}


def test_a_stage_spelled_in_another_case_is_one_cohort() -> None:
    """History learnt under the configuration's `Engaging` projects a CRM's `ENGAGING` and
    `engaging` deals now; an unconfigured stage takes its first spelling in code-point order."""
    rows = projection_rows(
        periods=[0],
        cohorts=[
            CohortRow(0, "a", "EUR", "Engaging", "undated", D(100), D(50)),
            CohortRow(0, "a", "EUR", "engaging", "undated", D(100), D(50)),
            CohortRow(0, "a", "EUR", "demo", "undated", D(10), D(10)),
        ],
        new_won=[],
        pipeline=[
            PipelineRow("a", "EUR", "ENGAGING", "undated", D(1000)),
            PipelineRow("a", "EUR", "engaging", "undated", D(200)),
            PipelineRow("a", "EUR", "Demo", "undated", D(4)),
        ],
        sums=[],
        stage_names={"engaging": "Engaging"},
    )
    a = rows[0]
    assert [(r.stage, r.open_amount, r.rate, r.projected) for r in a.rates] == [
        ("Demo", D(4), D("1.0000"), D("4.00")),
        ("Engaging", D(1200), D("0.5000"), D("600.00")),
    ]
    assert (a.from_pipeline, a.unprojected) == (D("604.00"), D(0))


def test_stage_names_spell_each_stage_as_configured_the_default_pipeline_first() -> None:
    def pipeline(name: str, *stages: str) -> dict[str, object]:
        return {"name": name, "stages": [stage(s, n) for n, s in enumerate(stages, 1)]}

    config = ForecastConfig.model_validate(
        {
            "pipelines": [pipeline("renewals", "QUALIFY", "Won"), pipeline("new", "Qualify")],
            "default_pipeline": "new",
        }
    )
    assert StageTable.of(config).stage_names() == {"qualify": "Qualify", "won": "Won"}
