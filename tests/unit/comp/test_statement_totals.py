"""Statement totals and sentences for pay on cash and the payout cap, from the lines the
calculation makes (`statements.report`, pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Inputs, Payment
from services.comp_engine.calc.lines import Line
from services.comp_engine.statements.report import statement, totals_rows
from tests.support.comp import assign, flat_component, plan, won


def rows(lines: list[Line], period: str) -> list[SimpleNamespace]:
    """The calculation's lines of one period as the ledger would hold them."""
    return [
        SimpleNamespace(
            id=number,
            kind=line.key.kind.value,
            period=line.key.period,
            deal_id=line.key.deal_id,
            rule=line.key.rule,
            role=line.key.role,
            amount=line.amount,
            currency=line.currency,
            trace=line.trace,
        )
        for number, line in enumerate(lines)
        if line.key.period == period
    ]


def cash_lines() -> list[Line]:
    """A 10,000 deal at 10% paid on cash, 4,000 paid in Q1, with a 300 payout cap."""
    version = plan(
        components=[flat_component("10")],
        payment={"timing": "on_cash", "max_payable_per_period": "300"},
    )
    payment = Payment("d", "inv-7", datetime(2027, 2, 1, tzinfo=UTC), Decimal("4000"), "USD")
    inputs = Inputs(
        plans={"p": [version]},
        assignments=[assign("r1", start=date(2027, 1, 1))],
        payments=[payment],
    )
    return compute({"d": won(date(2027, 1, 5), "10000")}, inputs, today=date(2027, 5, 1)).lines


def test_totals_reconcile_earned_cash_cap_and_payable() -> None:
    q1 = cash_lines()
    s = statement("r1", "2027-Q1", rows(q1, "2027-Q1"), held_ids=set(), closed=False)
    t = s.totals["USD"]
    assert t["earned"] == Decimal("1000.00")
    assert t["withheld_for_cash"] == Decimal("1000.00")
    assert t["released_by_cash"] == Decimal("400.00")
    assert t["carried_out"] == Decimal("100.00")
    assert t["payable"] == Decimal("300.00")
    assert t["balance"] == Decimal("300.00")
    q2 = statement("r1", "2027-Q2", rows(q1, "2027-Q2"), held_ids=set(), closed=False)
    assert q2.totals["USD"]["carried_in"] == Decimal("100.00")
    assert q2.totals["USD"]["payable"] == Decimal("100.00")
    words = s.totals_explained["USD"]
    assert words["withheld_for_cash"].startswith("1,000.00 USD of it is on deals paid on cash")
    assert "carried into the next period" in words["carried_out"]


def test_lines_explain_the_invoices_and_the_cap() -> None:
    s = statement("r1", "2027-Q1", rows(cash_lines(), "2027-Q1"), held_ids=set(), closed=False)
    by_kind = {line.kind: line.explanation for line in s.lines}
    assert "withheld until its invoices are paid (-1,000.00 USD)" in by_kind["payable_deferral"]
    assert "inv-7 4,000.00 USD on 2027-02-01" in by_kind["payable_release"]
    assert "share 0 -> 0.4" in by_kind["payable_release"]
    assert "exceeds it by 100.00 USD" in by_kind["payout_cap_excess"]


def test_held_release_is_not_payable_and_a_payout_for_earlier_periods_is_shown() -> None:
    lines = rows(cash_lines(), "2027-Q1")
    release = next(r for r in lines if r.kind == "payable_release")
    held = statement("r1", "2027-Q1", lines, held_ids={release.id}, closed=False)
    assert held.totals["USD"]["held"] == Decimal("400.00")
    assert held.totals["USD"]["payable"] == Decimal("-100.00")
    payout = SimpleNamespace(
        id=99,
        kind="payout",
        period="2027-Q2",
        deal_id="",
        rule="payout",
        role="",
        amount=Decimal("-150.00"),
        currency="USD",
        trace={"payout": {"payable": "150", "this_period": "100", "earlier_periods": "50"}},
    )
    q2 = statement("r1", "2027-Q2", [payout], held_ids=set(), closed=True)
    assert q2.totals["USD"]["paid"] == Decimal("150.00")
    assert q2.totals["USD"]["paid_for_earlier"] == Decimal("50")
    assert q2.totals["USD"]["balance"] == Decimal("-100.00")


def test_the_totals_csv_rows_end_with_attainment_and_the_draw_balance() -> None:
    """[V16.1]'s draw (1,000 a month, recovered from the fourth month) on an attainment
    table: March's statement ends with the component's attainment and the 1,400 still to
    recover, in the draw's currency."""
    version = plan(
        period="month",
        quota="100000",
        components=[
            {
                "id": "nb",
                "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
            }
        ],
        draw={
            "kind": "recoverable",
            "amount_per_period": "1000",
            "recovery_start_period": 4,
            "recovery_percent": "100",
        },
    )
    earnings = {1: "5000", 2: "7000", 3: "4000"}
    histories = {f"d{m}": won(date(2027, m, 10), amount) for m, amount in earnings.items()}
    inputs = Inputs(plans={"p": [version]}, assignments=[assign("r1", start=date(2027, 1, 1))])
    lines = compute(histories, inputs, today=date(2027, 4, 1)).lines
    s = statement("r1", "2027-03", rows(lines, "2027-03"), held_ids=set(), closed=False)
    table = list(totals_rows(s))
    by_total = {row["total"]: row for row in table}
    assert by_total["payable"]["amount"] == "1000.00"
    assert by_total["attainment:nb"]["amount"] == s.attainment["nb"]
    assert Decimal(s.attainment["nb"]) == Decimal("4")
    draw = by_total["draw_balance"]
    assert (draw["currency"], Decimal(draw["amount"])) == ("USD", Decimal(1400))
    assert [row["total"] for row in table][-2:] == ["attainment:nb", "draw_balance"]
