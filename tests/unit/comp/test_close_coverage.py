"""A close locks the period it names; it lists the overlapping periods of the other plan
lengths in force, which it does not lock (`statements/coverage.py`)."""

from __future__ import annotations

from services.comp_engine.statements.coverage import not_covered
from shared.periods import parse_period


def test_a_quarter_lists_the_months_of_monthly_plans() -> None:
    assert not_covered(parse_period("2026-Q1"), {"quarter", "month"}) == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]


def test_a_month_lists_its_quarter_and_fiscal_year() -> None:
    assert not_covered(parse_period("2026-11"), {"month", "quarter", "year"}) == [
        "FY2026",
        "2026-Q4",
    ]


def test_plans_of_the_closes_own_length_leave_nothing_open() -> None:
    assert not_covered(parse_period("2026-Q2"), {"quarter"}) == []
    assert not_covered(parse_period("FY2027"), set()) == []
