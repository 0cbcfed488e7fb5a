"""Capitalised commissions amortised straight-line (ASC 340-40 / IFRS 15). Sources quoted
in tests/unit/comp/WORKED_EXAMPLES.md under the vector ids."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.comp_engine.calc.amortization import Capitalised, capitalised, in_period
from shared.periods import parse_period


def asset(
    amount: str, months: object, booked: date = date(2026, 1, 15), ended: date | None = None
) -> Capitalised | None:
    return capitalised(
        line_id=1,
        rep_id="r",
        deal_id="d",
        kind="commission",
        amount=Decimal(amount),
        currency="USD",
        booked_on=booked,
        contract_months=months,
        ended=ended,
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


@pytest.mark.parametrize("ended", [None, date(2026, 1, 31), date(2026, 7, 4), date(2032, 1, 1)])
@pytest.mark.parametrize("months", [13, 36, 48, 7 * 12 + 5])
def test_the_schedule_adds_up_to_the_line_exactly(months: int, ended: date | None) -> None:
    """[V19.1] Aleq's rows round month by month inconsistently; a running series never
    drifts: the periods' expenses add up to the capitalised amount to the cent, with or
    without a write-off at the contract's end (V19.3)."""
    item = asset("22680.01", months, ended=ended)
    assert item is not None
    total = Decimal(0)
    period = parse_period("2026-01")
    while (row := in_period(item, period)) is not None:
        total += row.expense
        period = period.next()
    assert total == Decimal("22680.01")
    assert in_period(item, parse_period("2025-12")) is None


def test_a_terminated_contract_writes_the_asset_off_in_the_month_it_ends() -> None:
    """[V19.3] ASC 340-40-35-3 (Deloitte's roadmap quotes it): once the contract ends no
    consideration is left to recover the asset, so it is impaired to nil; the termination
    reading and the figures are derived from 35-3, not the source's. 36,000 over 36 months
    booked in January, ended on 10 April: 1,000 in each of January to March, April 1,000
    plus 32,000 written off, then nothing; the months add up to the line exactly."""
    item = asset("36000", 36, ended=date(2026, 4, 10))
    assert item is not None
    months = [in_period(item, parse_period(f"2026-{m:02d}")) for m in range(1, 5)]
    assert [(r.expense, r.written_off) for r in months if r is not None] == [
        (Decimal("1000.00"), Decimal(0)),
        (Decimal("1000.00"), Decimal(0)),
        (Decimal("1000.00"), Decimal(0)),
        (Decimal("33000.00"), Decimal("32000.00")),
    ]
    april = months[-1]
    assert april is not None
    assert (april.amortised_to_date, april.balance) == (Decimal("36000"), Decimal(0))
    assert sum(r.expense for r in months if r is not None) == Decimal("36000")
    assert in_period(item, parse_period("2026-05")) is None
    assert in_period(item, parse_period("2026-Q3")) is None


def test_an_end_in_the_first_month_writes_off_all_but_that_month() -> None:
    """[V19.3] A deal lost in its booking month: one month's 1,000, 35,000 written off."""
    item = asset("36000", 36, ended=date(2026, 1, 20))
    assert item is not None
    row = in_period(item, parse_period("2026-01"))
    assert row is not None
    assert (row.expense, row.written_off, row.balance) == (
        Decimal("36000"),
        Decimal("35000.00"),
        Decimal(0),
    )
    assert in_period(item, parse_period("2026-02")) is None


def test_a_quarter_containing_the_end_carries_the_write_off() -> None:
    """[V19.3] The second quarter holds April's 1,000 and the 32,000 written off: 33,000
    after the first quarter's 3,000; the first quarter has no write-off."""
    item = asset("36000", 36, ended=date(2026, 4, 10))
    assert item is not None
    first = in_period(item, parse_period("2026-Q1"))
    second = in_period(item, parse_period("2026-Q2"))
    assert first is not None
    assert second is not None
    assert (first.expense, first.written_off) == (Decimal("3000.00"), Decimal(0))
    assert (second.expense, second.written_off, second.balance) == (
        Decimal("33000.00"),
        Decimal("32000.00"),
        Decimal(0),
    )
    whole = in_period(item, parse_period("FY2026"))
    assert whole is not None
    assert (whole.expense, whole.written_off) == (Decimal("36000"), Decimal("32000.00"))


def test_an_end_after_the_term_writes_nothing_off() -> None:
    """[V19.3] A contract that ran its course has nothing left to impair."""
    item = asset("36000", 36, ended=date(2030, 1, 1))
    assert item is not None
    last = in_period(item, parse_period("2028-12"))
    assert last is not None
    assert (last.expense, last.written_off, last.balance) == (
        Decimal("1000.00"),
        Decimal(0),
        Decimal(0),
    )
