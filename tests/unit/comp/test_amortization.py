"""Capitalised commissions amortised straight-line (ASC 340-40 / IFRS 15). Sources quoted
in tests/unit/comp/WORKED_EXAMPLES.md under the vector ids."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.comp_engine.calc.amortization import Capitalised, capitalised, in_period
from shared.periods import parse_period


def asset(amount: str, months: object, booked: date = date(2026, 1, 15)) -> Capitalised | None:
    return capitalised(
        line_id=1,
        rep_id="r",
        deal_id="d",
        kind="commission",
        amount=Decimal(amount),
        currency="USD",
        booked_on=booked,
        contract_months=months,
    )


def test_contract_term_months() -> None:
    """[V19.2] Kdesk Accounting: 15,000 over a 36-month contract is 416.67 a month; a
    6-month contract's 3,000 is expensed at once (the practical expedient)."""
    item = asset("15000", 36)
    assert item is not None
    (january,) = [in_period(item, parse_period("2026-01"))]
    assert january is not None
    assert january.expense == Decimal("416.67")
    assert asset("3000", 6) is None
    assert asset("3000", 12) is None
    assert asset("3000", None) is None


def test_a_year_of_a_three_year_asset() -> None:
    """[V19.2] FinLearnHub, IFRS 15: a 9,000 commission over a three-year contract is
    3,000 a year."""
    item = asset("9000", 36, date(2026, 1, 1))
    assert item is not None
    row = in_period(item, parse_period("FY2026"))
    assert row is not None
    assert (row.expense, row.amortised_to_date, row.balance) == (
        Decimal("3000.00"),
        Decimal("3000.00"),
        Decimal("6000.00"),
    )


@pytest.mark.parametrize("months", [13, 36, 48, 7 * 12 + 5])
def test_the_schedule_adds_up_to_the_line_exactly(months: int) -> None:
    """[V19.1] Aleq's rows round month by month inconsistently; a running series never
    drifts: the periods' expenses add up to the capitalised amount to the cent."""
    item = asset("22680.01", months)
    assert item is not None
    total = Decimal(0)
    period = parse_period("2026-01")
    while (row := in_period(item, period)) is not None:
        total += row.expense
        period = period.next()
    assert total == Decimal("22680.01")
    assert in_period(item, parse_period("2025-12")) is None
