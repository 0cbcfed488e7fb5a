"""Rate tables against vendors' published worked examples.

Each case names its source; tests/unit/comp/WORKED_EXAMPLES.md quotes it with the address
(vector ids V1.1 ... in brackets)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.comp_engine.calc.rates import Boundary, Table, Tier, TierMode, earned, tier_at

PER_PERCENT_OF_AMOUNT = Decimal("0.01")


def table(
    rows: list[tuple[str, str | None, str]],
    mode: TierMode = TierMode.MARGINAL,
    boundary: Boundary = Boundary.UPPER,
    unit: Decimal = PER_PERCENT_OF_AMOUNT,
) -> Table:
    tiers = tuple(
        Tier(Decimal(a), None if b is None else Decimal(b), Decimal(r)) for a, b, r in rows
    )
    return Table(tiers, mode, boundary, unit)


def between(t: Table, start: str, end: str) -> Decimal:
    return earned(t, Decimal(end))[0] - earned(t, Decimal(start))[0]


SPIFF_MAMOUNT = [("0", "150000", "4"), ("150000", "250000", "6"), ("250000", None, "8")]
ORACLE_SPLIT_OPTIONS = [
    ("0", "10000", "1"),
    ("10000", "50000", "2"),
    ("50000", "100000", "3"),
    ("100000", None, "4"),
]
ORACLE_STEP_RATES = [
    ("0", "1000", "1"),
    ("1000", "3000", "2"),
    ("3000", "8000", "3"),
    ("8000", None, "5"),
]
ORACLE_24B = [
    ("0", "1000", "1"),
    ("1000", "5000", "2"),
    ("5000", "10000", "3"),
    ("10000", None, "0"),
]


def test_marginal_deal_crossing_a_tier_given_prior_attainment() -> None:
    """[V1.1] Salesforce Spiff `mamount` (Trailhead, "Use Marginal Payout Rule Functions"):
    145,000 closed, a 20,000 deal: 5,000 at 4% and 15,000 at 6% = 1,100."""
    t = table(SPIFF_MAMOUNT)
    assert between(t, "145000", "165000") == Decimal("1100")
    _, steps = earned(t, Decimal("165000"))
    assert [(s.tier, s.end - s.start) for s in steps] == [(0, Decimal(150000)), (1, Decimal(15000))]


@pytest.mark.parametrize(
    ("amount", "marginal", "retroactive"),
    [("5000", "50", "50"), ("15000", "200", "300"), ("60000", "1200", "1800")],
)
def test_marginal_against_retroactive(amount: str, marginal: str, retroactive: str) -> None:
    """[V1.2, V2.1] Oracle Fusion IC, "Options for Splitting Attainment Numbers Across Rate
    Tiers": step rate splits 15,000 into 10,000 at 1% and 5,000 at 2%; the unsplit rate
    pays the whole at the highest tier reached (2% for 15,000, 3% for 60,000)."""
    assert earned(table(ORACLE_SPLIT_OPTIONS), Decimal(amount))[0] == Decimal(marginal)
    retro = table(ORACLE_SPLIT_OPTIONS, TierMode.RETROACTIVE)
    assert earned(retro, Decimal(amount))[0] == Decimal(retroactive)


def test_step_rate_blended_rate_and_per_tier_trace() -> None:
    """[V1.3] Oracle Sales 24B "Report Split Rates in Calculation": 2,500 at step rates is a
    1.6% blended rate: 1,000 at 1% and 1,500 at 2%."""
    amount, steps = earned(table(ORACLE_24B), Decimal("2500"))
    assert amount == Decimal("40")
    assert amount / Decimal("2500") * 100 == Decimal("1.6")
    assert [(s.end - s.start, s.rate, s.earned) for s in steps] == [
        (Decimal(1000), Decimal(1), Decimal("10")),
        (Decimal(1500), Decimal(2), Decimal("30")),
    ]


def test_interpolated_rate_is_proportional_within_the_tier() -> None:
    """[V3.2] Oracle Sales 24B: proportional split of 2,000 on the same table gives 1.5%
    (1% for the first tier, plus 1,000/4,000 of the second tier's 2%): 30."""
    amount, steps = earned(table(ORACLE_24B, TierMode.INTERPOLATED), Decimal("2000"))
    assert steps[0].rate == Decimal("1.5")
    assert amount == Decimal("30")


QUARTER = ["200", "300", "1500", "1200", "2000", "4500"]


def test_transactions_processed_individually() -> None:
    """[V1.4] Oracle Fusion IC, "Examples of Calculating Earnings Using Step Rates": each
    transaction against the table from zero: 2, 3, 20, 14, 30, 95; the quarter 164."""
    t = table(ORACLE_STEP_RATES)
    lines = [earned(t, Decimal(a))[0] for a in QUARTER]
    assert lines == [Decimal(x) for x in ("2", "3", "20", "14", "30", "95")]
    assert sum(lines) == 164


def test_same_transactions_cumulative_over_the_quarter() -> None:
    """[V4.1] The V1.4 quarter walked cumulatively (Spiff `mamount` with the running total):
    2, 3, 25, 26, 60, 169 = 285, the table's value at the quarter's 9,700."""
    t = table(ORACLE_STEP_RATES)
    total, lines = Decimal(0), []
    for amount in QUARTER:
        lines.append(between(t, str(total), str(total + Decimal(amount))))
        total += Decimal(amount)
    assert lines == [Decimal(x) for x in ("2", "3", "25", "26", "60", "169")]
    assert sum(lines) == earned(t, total)[0] == 285


def test_interpolated_amount_table_as_marginal_rates() -> None:
    """[V3.1] Oracle Fusion IC, "Examples of Calculating Earnings Using Interpolated Rates":
    an amount table paying 10 over 0-1,000, 40 over 1,000-3,000, 100 over 3,000-8,000 is
    the marginal table of rates 1%, 2%, 2%; the quarter's transactions earn 149."""
    t = table(
        [("0", "1000", "1"), ("1000", "3000", "2"), ("3000", "8000", "2"), ("8000", None, "2")]
    )
    lines = [earned(t, Decimal(a))[0] for a in QUARTER]
    assert lines == [Decimal(x) for x in ("2", "3", "20", "14", "30", "80")]
    assert sum(lines) == 149


@pytest.mark.parametrize(
    ("boundary", "rate", "amount"),
    [(Boundary.UPPER, "3", "1500"), (Boundary.LOWER, "2", "1000")],
)
def test_who_owns_a_value_on_the_boundary(boundary: Boundary, rate: str, amount: str) -> None:
    """[V5.1, V5.3] Oracle "Equal Tier Values": exactly 50,000 is paid at the higher tier's
    3%; Spiff `tier_payout` by default takes the lower tier (2%). Marginal: 750 either way."""
    rows = [
        ("0", "25000", "1"),
        ("25000", "50000", "2"),
        ("50000", "75000", "3"),
        ("75000", None, "4"),
    ]
    retro = table(rows, TierMode.RETROACTIVE, boundary)
    value, steps = earned(retro, Decimal("50000"))
    assert (steps[0].rate, value) == (Decimal(rate), Decimal(amount))
    assert earned(table(rows, boundary=boundary), Decimal("50000"))[0] == 750


@pytest.mark.parametrize(
    ("boundary", "amount"), [(Boundary.UPPER, "37500"), (Boundary.LOWER, "26250")]
)
def test_business_that_wants_the_lower_tier_at_its_top(boundary: Boundary, amount: str) -> None:
    """[V5.2] My Oracle Support 2582565.1: 1,500,000 accumulated gets 2.50% in Oracle; the
    business wanted 1.75%. `boundary: lower` gives it that."""
    rows = [("0", "1500000", "1.75"), ("1500000", "3000000", "2.50"), ("3000000", None, "3.25")]
    t = table(rows, TierMode.RETROACTIVE, boundary)
    assert earned(t, Decimal("1500000"))[0] == Decimal(amount)


def test_pay_curve_on_target_variable() -> None:
    """[V6.1] RevOps Masters, "Accelerators and decelerators": quota 500,000, target variable
    100,000, 1.0x to 100%, 1.5x to 130%: 650,000 closed (130%) earns 145,000."""
    per_point = Decimal("100000") / 100
    t = table([("0", "100", "1"), ("100", "130", "1.5"), ("130", None, "2")], unit=per_point)
    assert earned(t, Decimal("130"))[0] == Decimal("145000")


def test_stacked_tiers_on_the_period() -> None:
    """[V7.3] ExcelForum, a user's plan: 5% to 100,000, 6% to 125,000, 7% above: 150,000
    earns 5,000 + 1,500 + 1,750."""
    t = table([("0", "100000", "5"), ("100000", "125000", "6"), ("125000", None, "7")])
    assert earned(t, Decimal("150000"))[0] == Decimal("8250")


def test_decreasing_rates_are_walked_as_given() -> None:
    """[V1.5] mikesalkin.com "Commission Calculation Examples": 1% to 300,000 then 0.5%:
    400,000 earns 3,500 and 800,000 earns 5,500."""
    t = table([("0", "300000", "1"), ("300000", None, "0.5")])
    assert earned(t, Decimal("400000"))[0] == Decimal("3500")
    assert earned(t, Decimal("800000"))[0] == Decimal("5500")


def test_below_the_first_tier_the_first_rate_continues() -> None:
    """Derived from the engine's rule, not a vendor's numbers: below a table's first tier
    (a clawback that lowers attainment past its start) the first rate continues, so the
    walk stays continuous (`rates._marginal`, `rates.tier_at`); no vendor publishes this
    case. 5 on a table starting at 10 at 2%: (5 - 10) x 2% = -0.10, in tier 0."""
    t = table([("10", "20", "2"), ("20", None, "4")])
    assert earned(t, Decimal("5"))[0] == Decimal("-0.10")
    assert tier_at(t.tiers, Decimal("5"), Boundary.UPPER) == 0
