"""Which forecasts the snapshots of a closed period made, and their summaries by horizon."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.forecast_worker.accuracy.report import Key, Taken, forecasts, summaries
from services.forecast_worker.rollup.figures import GroupSums, figures
from services.forecast_worker.rollup.schemas import RollupRow

D = Decimal
END = date(2026, 4, 1)


def row(group: str, closed: int, commit: int, best: int, **more: Any) -> RollupRow:
    numbers = figures(GroupSums(closed_won=D(closed), commit=D(commit), best_case=D(best)))
    cells = {k: v for k, v in vars(numbers).items() if k != "open_pipeline"}
    return RollupRow(group=group, currency="USD", **cells, **more)


def at(day: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def test_each_snapshot_forecasts_each_group() -> None:
    taken = [
        Taken(1, at(16), "weekly", [row("ann", 0, 900, 300, call_commit=D(1000))]),
        Taken(2, at(1, 4), "period_end", [row("ann", 1100, 0, 0)]),
    ]
    actuals: dict[Key, Decimal] = {("ann", "USD"): D(1100), ("bob", "USD"): D(50)}
    made = forecasts("2026-Q1", END, taken, actuals)
    got = [
        (f.snapshot_id, f.weeks_before_end, f.group, f.measure, f.outcome.forecast) for f in made
    ]
    assert got == [
        (1, 2, "ann", "call_commit", D(1000)),
        (1, 2, "ann", "commit_plus_closed", D(900)),
        (1, 2, "ann", "best_case_plus_commit_plus_closed", D(1200)),
        (1, 2, "bob", "commit_plus_closed", D(0)),
        (1, 2, "bob", "best_case_plus_commit_plus_closed", D(0)),
        (2, 0, "ann", "commit_plus_closed", D(1100)),
        (2, 0, "ann", "best_case_plus_commit_plus_closed", D(1100)),
        (2, 0, "bob", "commit_plus_closed", D(0)),
        (2, 0, "bob", "best_case_plus_commit_plus_closed", D(0)),
    ], "bob closed a deal no snapshot saw: forecast 0; only ann called"
    assert {f.outcome.actual for f in made if f.group == "ann"} == {D(1100)}


def test_a_managers_adjustment_is_a_forecast_of_its_own() -> None:
    taken = [Taken(1, at(30), "weekly", [row("team-a", 0, 10, 0, adjustment_commit=D(950))])]
    made = forecasts("2026-Q1", END, taken, {("team-a", "USD"): D(1000)})
    assert [(f.measure, f.outcome.error, f.outcome.error_pct) for f in made] == [
        ("adjustment_commit", D(-50), D("-0.0500")),
        ("commit_plus_closed", D(-990), D("-0.9900")),
        ("best_case_plus_commit_plus_closed", D(-990), D("-0.9900")),
    ]


def test_a_group_without_actuals_has_an_actual_of_zero() -> None:
    made = forecasts("2026-Q1", END, [Taken(1, at(30), "weekly", [row("cy", 0, 10, 0)])], {})
    assert [(f.measure, f.outcome.actual, f.outcome.error_pct) for f in made] == [
        ("commit_plus_closed", D(0), None),
        ("best_case_plus_commit_plus_closed", D(0), None),
    ]


def test_summaries_over_periods_and_by_week() -> None:
    q1 = forecasts(
        "2026-Q1",
        END,
        [
            Taken(1, at(16), "weekly", [row("ann", 0, 1000, 0)]),
            Taken(2, at(1, 4), "period_end", [row("ann", 1000, 0, 0)]),
        ],
        {("ann", "USD"): D(1000)},
    )
    q2 = forecasts(
        "2026-Q2",
        date(2026, 7, 1),
        [Taken(3, datetime(2026, 6, 16, tzinfo=UTC), "weekly", [row("ann", 0, 1500, 0)])],
        {("ann", "USD"): D(1000)},
    )
    result = summaries(q1 + q2, by_week=True)
    commit = [s for s in result if s.measure == "commit_plus_closed"]
    assert [(s.weeks_before_end, s.periods, s.accuracy.forecasts) for s in commit] == [
        (None, 2, 3),
        (0, 1, 1),
        (2, 2, 2),
    ]
    overall, at_end, two_weeks = (s.accuracy for s in commit)
    assert (overall.bias, overall.wape, overall.hit_rate_5) == (
        D("0.1667"),
        D("0.1667"),
        D("0.6667"),
    )
    assert (at_end.bias, at_end.hit_rate_10) == (D(0), D(1))
    assert (two_weeks.bias, two_weeks.wape, two_weeks.hit_rate_10) == (
        D("0.2500"),
        D("0.2500"),
        D("0.5000"),
    )
    assert [s.weeks_before_end for s in summaries(q1 + q2, by_week=False)] == [None, None]
