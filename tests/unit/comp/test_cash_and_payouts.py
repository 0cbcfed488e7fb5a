"""Pay on cash, the payout cap and draw recovery caps in the pure calculation (`engine.compute`),
on hand vectors and vendors' worked examples; each test's docstring cites its source.
Every line of every result is also redone from its trace."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import Result, compute
from services.comp_engine.calc.inputs import FxRate, FxTable, Inputs, Payment, PlanVersion
from services.comp_engine.calc.lines import Kind, Line
from services.comp_engine.calc.trace_check import recompute
from tests.support.comp import assign, flat_component, plan, state, won

START = date(2027, 1, 1)


def run(
    histories: dict[str, list[DealState]],
    version: PlanVersion,
    *,
    today: date,
    payments: list[Payment] | None = None,
    **inputs: Any,
) -> Result:
    result = compute(
        histories,
        Inputs(
            plans={"p": [version]},
            assignments=inputs.pop("assignments", [assign("r1", start=START)]),
            payments=payments or [],
            **inputs,
        ),
        today=today,
    )
    for line in result.lines:
        assert recompute(line.trace) == line.amount, (line.key, line.trace)
    return result


def paid(deal: str, invoice: str, day: date, amount: str, currency: str = "USD") -> Payment:
    return Payment(
        deal,
        invoice,
        datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
        Decimal(amount),
        currency,
    )


def by(result: Result, kind: Kind) -> dict[str, Decimal]:
    """Per period, the lines of one kind."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in result.lines:
        if line.key.kind is kind:
            totals[line.key.period] += line.amount
    return dict(totals)


def payable(result: Result) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in result.lines:
        totals[line.key.period] += line.amount
    return dict(totals)


def only(result: Result, kind: Kind) -> list[Line]:
    return [line for line in result.lines if line.key.kind is kind]


ON_CASH = {"timing": "on_cash"}


def test_half_paid_invoice_releases_half_the_commission() -> None:
    """frappe/erpnext#25239 (https://github.com/frappe/erpnext/issues/25239): a 10,000 sale
    with 5,000 paid pays commission on 5,000. At 10%: 1,000 earned in Q1, all withheld
    there, 500 released in the quarter the first 5,000 was paid, 500 when the rest was."""
    p = plan(components=[flat_component("10")], payment=ON_CASH)
    result = run(
        {"d": won(date(2027, 1, 5), "10000")},
        p,
        today=date(2027, 6, 30),
        payments=[
            paid("d", "inv-1", date(2027, 2, 1), "5000"),
            paid("d", "inv-2", date(2027, 4, 3), "5000"),
        ],
    )
    assert by(result, Kind.COMMISSION) == {"2027-Q1": Decimal("1000.00")}
    assert by(result, Kind.PAYABLE_DEFERRAL) == {"2027-Q1": Decimal("-1000.00")}
    assert by(result, Kind.PAYABLE_RELEASE) == {
        "2027-Q1": Decimal("500.00"),
        "2027-Q2": Decimal("500.00"),
    }
    assert payable(result) == {"2027-Q1": Decimal("500.00"), "2027-Q2": Decimal("500.00")}
    q2 = next(line for line in only(result, Kind.PAYABLE_RELEASE) if line.key.period == "2027-Q2")
    release = q2.trace["cash_release"]
    assert [i["invoice_id"] for i in release["invoices"]] == ["inv-2"]
    assert (release["share_before"], release["share_after"]) == ("0.5", "1")
    assert release["released_cumulative"] == "1000.00"


def test_eligibility_by_invoice_percent_unpaid_deal_is_not_payable() -> None:
    """QuotaPath, "Payouts eligibility" (https://help.quotapath.com/en/articles/6457485-payouts-eligibility):
    a deal becomes payable by the percent of its invoice paid. Nothing paid: earned, withheld,
    payable 0; 25% paid in March: a quarter of 800 = 200 payable in Q1."""
    p = plan(components=[flat_component("8")], payment=ON_CASH)
    unpaid = run({"d": won(date(2027, 1, 20), "10000")}, p, today=date(2027, 3, 31))
    assert by(unpaid, Kind.COMMISSION) == {"2027-Q1": Decimal("800.00")}
    assert payable(unpaid) == {"2027-Q1": Decimal("0.00")}
    quarter = run(
        {"d": won(date(2027, 1, 20), "10000")},
        p,
        today=date(2027, 3, 31),
        payments=[paid("d", "inv-1", date(2027, 3, 2), "2500")],
    )
    assert payable(quarter) == {"2027-Q1": Decimal("200.00")}


def test_component_timing_overrides_the_plan() -> None:
    """A hand vector: the plan pays on booking, its 'renewals' component on cash; only that
    component's line is withheld."""
    p = plan(
        components=[
            flat_component("10", component_id="new", filter={"deal_types": ["new"]}),
            flat_component(
                "5",
                component_id="renewals",
                filter={"deal_types": ["renewal"]},
                payment_timing="on_cash",
            ),
        ]
    )
    result = run(
        {
            "n": won(date(2027, 1, 5), "1000", deal_type="new"),
            "r": won(date(2027, 1, 6), "1000", deal_type="renewal"),
        },
        p,
        today=date(2027, 3, 31),
    )
    (deferral,) = only(result, Kind.PAYABLE_DEFERRAL)
    assert (deferral.key.deal_id, deferral.key.rule, deferral.amount) == (
        "r",
        "renewals",
        Decimal("-50.00"),
    )
    assert deferral.trace["cash_deferral"]["timing_set_by"] == "component"
    assert payable(result) == {"2027-Q1": Decimal("100.00")}


def test_thirds_release_to_the_cent() -> None:
    """A hand vector: 100.00 withheld, paid in three equal thirds across three months,
    releases 33.33, 33.34, 33.33 (round(100 x share) differences), 100.00 in all."""
    p = plan(period="month", components=[flat_component("10")], payment=ON_CASH)
    result = run(
        {"d": won(date(2027, 1, 5), "1000")},
        p,
        today=date(2027, 4, 30),
        payments=[
            paid("d", "a", date(2027, 1, 10), "333.3333"),
            paid("d", "b", date(2027, 2, 10), "333.3333"),
            paid("d", "c", date(2027, 3, 10), "333.3334"),
        ],
    )
    assert by(result, Kind.PAYABLE_RELEASE) == {
        "2027-01": Decimal("33.33"),
        "2027-02": Decimal("33.34"),
        "2027-03": Decimal("33.33"),
    }


def test_payment_in_another_currency_converts_at_its_day_and_never_exceeds_one() -> None:
    """A hand vector: a USD 1,000 deal paid EUR 500 at 1.10 (550 USD), then EUR 500 at 1.20
    (600 USD, more than the rest): 55% then 100%, never more."""
    p = plan(period="month", components=[flat_component("10")], payment=ON_CASH)
    fx = FxTable(
        [
            FxRate("EUR", "USD", date(2027, 1, 1), Decimal("1.10")),
            FxRate("EUR", "USD", date(2027, 2, 1), Decimal("1.20")),
        ]
    )
    result = run(
        {"d": won(date(2027, 1, 5), "1000")},
        p,
        today=date(2027, 3, 31),
        fx=fx,
        payments=[
            paid("d", "a", date(2027, 1, 20), "500", "EUR"),
            paid("d", "b", date(2027, 2, 20), "500", "EUR"),
        ],
    )
    assert by(result, Kind.PAYABLE_RELEASE) == {
        "2027-01": Decimal("55.00"),
        "2027-02": Decimal("45.00"),
    }


def test_payment_without_a_rate_releases_nothing_and_waits() -> None:
    p = plan(components=[flat_component("10")], payment=ON_CASH)
    result = run(
        {"d": won(date(2027, 1, 5), "1000")},
        p,
        today=date(2027, 3, 31),
        payments=[paid("d", "a", date(2027, 1, 20), "500", "EUR")],
    )
    assert only(result, Kind.PAYABLE_RELEASE) == []
    assert [w.subject for w in result.waiting] == ["d"]
    assert "EUR->USD" in result.waiting[0].reason


def test_clawback_on_the_original_rate_settles_the_withheld_rest() -> None:
    """Xactly's clawback at the original rate (https://helpcenter.xactlycorp.com/article/incent-administrator-plan-design-commission-clawback)
    takes back all 1,000 earned; 400 of it was released by cash, so the unreleased 600 is
    released with the clawback and the deal nets to 0 payable. A payment after the loss
    releases nothing."""
    p = plan(
        period="month",
        components=[flat_component("10")],
        payment=ON_CASH,
        clawback={"window_days": 365, "triggers": ["lost"]},
    )
    history = [state(date(2027, 1, 5), "won", "10000"), state(date(2027, 3, 5), "lost", "10000")]
    result = run(
        {"d": history},
        p,
        today=date(2027, 5, 31),
        payments=[
            paid("d", "a", date(2027, 2, 1), "4000"),
            paid("d", "b", date(2027, 4, 1), "6000"),
        ],
    )
    releases = {line.key.rule: line.amount for line in only(result, Kind.PAYABLE_RELEASE)}
    assert releases == {"c": Decimal("400.00"), "c:settled": Decimal("600.00")}
    assert by(result, Kind.CLAWBACK) == {"2027-03": Decimal("-1000.00")}
    assert sum(payable(result).values()) == 0


def test_payout_cap_carries_the_excess_forward() -> None:
    """Oracle Fusion IC payment plans, PAY_EXCESS_LATER_FLAG
    (https://docs.oracle.com/en/cloud/saas/sales/oedms/cnpaymentplansallb-25934.html): a
    1,000 cap a month, 2,500 earned in January: 1,000 payable in January, 1,000 of the
    carried 1,500 in February, the last 500 in March; nothing is lost."""
    p = plan(
        period="month",
        components=[flat_component("10")],
        payment={"max_payable_per_period": "1000"},
    )
    result = run({"d": won(date(2027, 1, 5), "25000")}, p, today=date(2027, 3, 15))
    assert payable(result) == {
        "2027-01": Decimal("1000.00"),
        "2027-02": Decimal("1000.00"),
        "2027-03": Decimal("500.00"),
    }
    assert by(result, Kind.PAYOUT_CAP_EXCESS) == {
        "2027-01": Decimal("-1500.00"),
        "2027-02": Decimal("-500.00"),
    }
    assert by(result, Kind.PAYOUT_CAP_CARRY_IN) == {
        "2027-02": Decimal("1500.00"),
        "2027-03": Decimal("500.00"),
    }
    (feb,) = [line for line in only(result, Kind.PAYOUT_CAP_EXCESS) if line.key.period == "2027-02"]
    assert feb.trace["payout_cap"]["carried_in"] == "1500.00"


def test_payout_cap_carry_past_today_waits_in_the_next_period() -> None:
    p = plan(
        period="month",
        components=[flat_component("10")],
        payment={"max_payable_per_period": "1000"},
    )
    result = run({"d": won(date(2027, 1, 5), "25000")}, p, today=date(2027, 1, 20))
    assert by(result, Kind.PAYOUT_CAP_CARRY_IN) == {"2027-02": Decimal("1500.00")}


def test_payout_cap_applies_to_cash_releases() -> None:
    """A hand vector: on cash with a 300 cap a quarter, 1,000 earned and paid in full in Q1:
    300 payable in Q1, 300 in Q2 ... the release counts toward the cap like any line."""
    p = plan(
        components=[flat_component("10")],
        payment={"timing": "on_cash", "max_payable_per_period": "300"},
    )
    result = run(
        {"d": won(date(2027, 1, 5), "10000")},
        p,
        today=date(2027, 12, 31),
        payments=[paid("d", "a", date(2027, 2, 1), "10000")],
    )
    assert payable(result) == {
        "2027-Q1": Decimal("300.00"),
        "2027-Q2": Decimal("300.00"),
        "2027-Q3": Decimal("300.00"),
        "2027-Q4": Decimal("100.00"),
    }


def _draw_plan(**draw: Any) -> PlanVersion:
    return plan(
        period="month",
        components=[flat_component("10")],
        draw={
            "kind": "recoverable",
            "amount_per_period": "1000",
            "recovery_start_period": 4,
            **draw,
        },
    )


ORACLE_DRAW = {
    f"d{m}": won(date(2027, m, 10), amount)
    for m, amount in {1: "5000", 2: "7000", 3: "4000", 4: "15000"}.items()
}


def test_draw_recovery_capped_by_amount() -> None:
    """Oracle's draw and recovery example
    (https://docs.oracle.com/en/cloud/saas/sales/facmi/example-of-incentive-compensation-draw-and-recovery.html):
    balance 1,400 after three advances, 1,500 earned in period 4 would recover 500; with
    MAX_RECOVERY_AMOUNT 200 (https://docs.oracle.com/en/cloud/saas/sales/oedms/cnpaymentplansallb-25934.html)
    it recovers 200 and carries 1,200."""
    result = run(ORACLE_DRAW, _draw_plan(max_recovery_per_period="200"), today=date(2027, 5, 1))
    (recovery,) = only(result, Kind.DRAW_RECOVERY)
    assert recovery.amount == Decimal("-200.00")
    assert Decimal(recovery.trace["balance_after"]) == 1200


def test_draw_recovery_capped_by_percent_of_earnings() -> None:
    """The same example with recovery held to 10% of the period's 1,500 earnings: 150."""
    result = run(
        ORACLE_DRAW, _draw_plan(max_recovery_percent_of_earnings="10"), today=date(2027, 5, 1)
    )
    (recovery,) = only(result, Kind.DRAW_RECOVERY)
    assert recovery.amount == Decimal("-150.00")


def test_draw_on_cash_measures_payable_not_earned() -> None:
    """A hand vector: on cash, 1,500 earned in January but unpaid is not payable, so the
    1,000 draw is advanced in full; February's payment releases 1,500, which recovers 500
    (1,500 above the 1,000 draw); booked-basis would have advanced nothing."""
    p = plan(
        period="month",
        components=[flat_component("10")],
        payment=ON_CASH,
        draw={"kind": "recoverable", "amount_per_period": "1000", "recovery_start_period": 1},
    )
    result = run(
        {"d": won(date(2027, 1, 10), "15000")},
        p,
        today=date(2027, 3, 1),
        payments=[paid("d", "a", date(2027, 2, 5), "15000")],
    )
    assert by(result, Kind.DRAW_ADVANCE) == {"2027-01": Decimal("1000.00")}
    assert by(result, Kind.DRAW_RECOVERY) == {"2027-02": Decimal("-500.00")}
    (advance,) = only(result, Kind.DRAW_ADVANCE)
    assert Decimal(advance.trace["withheld_for_cash"]) == 1500
