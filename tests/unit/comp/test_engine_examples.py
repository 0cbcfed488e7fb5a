"""The whole calculation (`engine.compute`) on vendors' worked examples, one mechanism per
test. Sources are quoted with their addresses in tests/unit/comp/WORKED_EXAMPLES.md under
the vector ids in brackets."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.clawbacks import elapsed_months
from services.comp_engine.calc.engine import Result, compute
from services.comp_engine.calc.inputs import (
    FxRate,
    FxTable,
    Inputs,
    Payment,
    PlanVersion,
    ReportingLine,
)
from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.payments import paid_share
from services.comp_engine.calc.trace_check import recompute
from tests.support.comp import assign, flat_component, plan, state, tiers, won

TODAY = date(2027, 6, 30)


def run(
    histories: dict[str, list[DealState]],
    plans: list[PlanVersion],
    *,
    today: date = TODAY,
    **inputs: Any,
) -> Result:
    by_plan: dict[str, list[PlanVersion]] = defaultdict(list)
    for version in plans:
        by_plan[version.plan_id].append(version)
    inputs.setdefault("assignments", [assign("r1")])
    result = compute(histories, Inputs(plans=by_plan, **inputs), today=today)
    for line in result.lines:
        assert recompute(line.trace) == line.amount, line.key
    return result


def total(result: Result, **match: Any) -> Decimal:
    return sum(
        (
            line.amount
            for line in result.lines
            if all(getattr(line.key, k) == v for k, v in match.items())
        ),
        Decimal(0),
    )


def test_ramp_quota_with_an_accelerator_above_it() -> None:
    """[V7.1] theodortrampe/commission-calculator, calculateCommissions.test.ts: month 1 of a
    ramp at 50% of a 10,000 quota, 10% rate, 2x above quota: 8,000 of revenue pays 1,100."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
        "accelerators": [{"threshold": "100", "multiplier": "2"}],
    }
    p = plan(period="month", quota="10000", ramp=["0.5"], components=[component])
    result = run(
        {"d1": won(date(2027, 1, 10), "5000"), "d2": won(date(2027, 1, 20), "3000")},
        [p],
        assignments=[assign("r1", start=date(2027, 1, 1))],
    )
    assert total(result, period="2027-01", kind=Kind.COMMISSION) == Decimal("800.00")
    assert total(result, period="2027-01", kind=Kind.ACCELERATOR) == Decimal("300.00")
    assert total(result, period="2027-01") == Decimal("1100.00")
    second = [line for line in result.lines if line.key.deal_id == "d2"]
    assert {line.key.kind for line in second} == {Kind.COMMISSION, Kind.ACCELERATOR}


COMMISH_ACCELERATED = {
    "id": "c",
    "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
    "accelerators": [
        {"threshold": "100", "multiplier": "1.5"},
        {"threshold": "150", "multiplier": "2"},
    ],
}
"""[V7.2] Commish's accelerator schedule on a 10% base: 1.0x to 100%, 1.5x to 150%, 2.0x
above."""


def test_walked_accelerators_pay_each_band_its_multiplier() -> None:
    """[V7.2] Commish, "Accelerators & Ramp Schedules" (1.0x to 100%, 1.5x to 150%, 2.0x
    above), marginal reading: quota 100,000, 170,000 closed pays 21,500 (not 24,000)."""
    component = COMMISH_ACCELERATED
    result = run(
        {"d1": won(date(2027, 2, 1), "170000")}, [plan(quota="100000", components=[component])]
    )
    assert total(result) == Decimal("21500.00")


def test_ramp_schedule_scales_the_quota_the_accelerators_read() -> None:
    """[V7.2] Commish, "Accelerators & Ramp Schedules": ramp 50% of quota in months 1-2, 75%
    in months 3-4, 100% from month 5, at the full rate; accelerators 1.5x from 100% and 2.0x
    from 150% on a 10% base. Commish gives no quota or deals, so ours: 20,000 a month and
    16,000 closed in months 1, 3 and 5. Month 1 (quota 10,000, 160%): 10,000 x 10% +
    5,000 x 15% + 1,000 x 20% = 1,950. Month 3 (15,000, 106.67%): 1,500 + 1,000 x 15% =
    1,650. Month 5 (20,000, 80%): 1,600."""
    component = COMMISH_ACCELERATED
    p = plan(
        period="month",
        quota="20000",
        ramp=["0.5", "0.5", "0.75", "0.75"],
        components=[component],
    )
    deals = {f"m{m}": won(date(2027, m, 10), "16000") for m in (1, 3, 5)}
    result = run(deals, [p], assignments=[assign("r1", start=date(2027, 1, 1))])
    assert [total(result, period=f"2027-0{m}") for m in (1, 3, 5)] == [
        Decimal("1950.00"),
        Decimal("1650.00"),
        Decimal("1600.00"),
    ]
    assert total(result, period="2027-05", kind=Kind.ACCELERATOR) == 0


@pytest.mark.parametrize(("closed", "expected"), [("200000", "20000.00"), ("300000", "60000.00")])
def test_decelerator_below_half_of_quota(closed: str, expected: str) -> None:
    """[V8.2] RevOps Masters: 40% attainment on a 100,000 target variable at 0.5x earns
    20,000; our decelerator is retroactive (QuotaPath, V2.2), so 60% earns the full 60,000."""
    component = {
        "id": "c",
        "rate_table": {
            "basis": "attainment",
            "unit": "percent_of_target_per_attainment_point",
            "tiers": [{"from": "0", "rate": "1"}],
        },
        "decelerator": {"threshold": "50", "multiplier": "0.5"},
    }
    p = plan(quota="500000", target_variable="100000", components=[component])
    half = str(Decimal(closed) / 2)
    result = run({"d1": won(date(2027, 1, 5), half), "d2": won(date(2027, 1, 6), half)}, [p])
    assert total(result) == Decimal(expected)


def test_quotapath_half_rate_below_half_then_retroactive_base_then_marginal_accelerator() -> None:
    """[V2.2] QuotaPath, "Account Executive: Accelerators & Decelerators", sample plan:
    monthly quota 33,000; 5% below 50% of quota; 10% from 50%, "retroactively applied to
    previous deals"; 20% above 100%, on new deals only, not previous tiers. QuotaPath
    publishes the plan, not a payout, so the deals are ours: 9,900 (30%) earns 495; 9,900
    more (60%) lifts the month to 10% of 19,800 = 1,980, this deal 1,485; 19,800 more
    (120%) earns 13,200 x 10% + 6,600 x 20% = 2,640. The month: 4,620."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
        "decelerator": {"threshold": "50", "multiplier": "0.5"},
        "accelerators": [{"threshold": "100", "multiplier": "2"}],
    }
    p = plan(period="month", quota="33000", components=[component])
    deals = {
        "a": won(date(2027, 3, 2), "9900"),
        "b": won(date(2027, 3, 9), "9900"),
        "c": won(date(2027, 3, 16), "19800"),
    }
    result = run(deals, [p], assignments=[assign("r1", start=date(2027, 1, 1))])
    assert [total(result, deal_id=d) for d in ("a", "b", "c")] == [
        Decimal("495.00"),
        Decimal("1485.00"),
        Decimal("2640.00"),
    ]
    assert total(result, period="2027-03") == Decimal("4620.00")
    assert total(result, deal_id="c", kind=Kind.ACCELERATOR) == Decimal("660.00")


def test_the_deal_that_crosses_the_decelerator_carries_the_uplift() -> None:
    """Derived from the plan's rule (the decelerator is retroactive: crossing its threshold pays
    the difference on the period so far, `Decelerator` in plans/document.py; QuotaPath's
    plan [V2.2] works the same way). Quota 1,000 at 10% x 0.5 below 50%: 400 earns 20;
    200 more (60%) lifts the period to 60, so that deal carries 40."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
        "decelerator": {"threshold": "50", "multiplier": "0.5"},
    }
    p = plan(quota="1000", components=[component])
    result = run({"a": won(date(2027, 1, 5), "400"), "b": won(date(2027, 1, 6), "200")}, [p])
    assert total(result, deal_id="a") == Decimal("20.00")
    assert total(result, deal_id="b") == Decimal("40.00")


def test_cap_per_deal_withholds_the_excess() -> None:
    """[V9.1] My Oracle Support Community: 3,355 earned against a 3,000 maximum pays 3,000."""
    p = plan(components=[flat_component("10", basis="deal_amount", cap_per_deal="3000")])
    result = run({"d1": won(date(2027, 1, 5), "33550")}, [p])
    (line,) = result.lines
    assert line.amount == Decimal("3000.00")
    assert line.trace["caps"]["applied"] == ["per_deal"]
    assert Decimal(line.trace["raw_amount"]) == 3000


def test_cap_per_period_stops_the_running_total() -> None:
    """Derived from the plan's definition, not a vendor's numbers: issue 9's "caps per deal
    and per period", the component's `cap_per_period` (plans/document.py). Xactly documents
    plan payment caps (X11 on the reference sheet) without a worked example; none with
    figures was found. 10% of 1,000 + 1,000 against a 150 cap: 100, then the 50 left."""
    p = plan(components=[flat_component("10", cap_per_period="150")])
    result = run({"a": won(date(2027, 1, 5), "1000"), "b": won(date(2027, 1, 6), "1000")}, [p])
    assert [line.amount for line in result.lines] == [Decimal("100.00"), Decimal("50.00")]


def test_minimum_commission_tops_up_an_ended_period() -> None:
    """[V10.1] Xactly, Commission Clawback: $100 at 5% is $5; the minimum is $10."""
    p = plan(period="month", components=[flat_component("5", minimum_per_period="10")])
    january = [assign("r1", start=date(2027, 1, 1), end=date(2027, 2, 1))]
    result = run(
        {"d1": won(date(2027, 1, 5), "100")}, [p], today=date(2027, 2, 1), assignments=january
    )
    assert total(result, kind=Kind.COMMISSION, deal_id="d1") == Decimal("5.00")
    assert total(result, kind=Kind.COMMISSION, rule="c:minimum") == Decimal("5.00")
    running = run(
        {"d1": won(date(2027, 1, 5), "100")}, [p], today=date(2027, 1, 20), assignments=january
    )
    assert total(running, rule="c:minimum") == 0


def test_revenue_splits_and_an_overlay_over_one_hundred_percent() -> None:
    """[V13.1] Salesforce Spiff, opportunity splits: A 50% revenue and 20% overlay, B 50%
    revenue, on a 100,000 deal: credits 50,000 + 20,000 and 50,000 (120% in all)."""
    splits = [("a", "50", "revenue"), ("b", "50", "revenue"), ("a", "20", "overlay")]
    p = plan(components=[flat_component("10")])
    result = run(
        {"d1": won(date(2027, 1, 5), "100000", splits=splits)},
        [p],
        assignments=[assign("a"), assign("b")],
    )
    assert total(result, rep_id="a", role="revenue") == Decimal("5000.00")
    assert total(result, rep_id="a", role="overlay") == Decimal("2000.00")
    assert total(result, rep_id="b") == Decimal("5000.00")


def test_overlay_without_quota_credit_earns_without_moving_attainment() -> None:
    """Derived from the plan's credit rules (quota credit and payout credit kept apart, issue
    9; `credit_rules.roles`); Spiff's overlay splits [V13.1] give the roles, not these
    figures. 900 on a 1,000 quota: the owner reaches 90% at 5% = 45; the overlay earns 45
    too and moves no attainment."""
    rules = {"roles": {"overlay": {"quota": False, "payout": True}}}
    component = {
        "id": "c",
        "rate_table": {
            "basis": "attainment",
            "mode": "retroactive",
            "tiers": tiers(("0", "100", "5"), ("100", None, "10")),
        },
    }
    p = plan(quota="1000", components=[component], credit_rules=rules)
    splits = [("a", "100", "owner"), ("a", "100", "overlay")]
    result = run(
        {"d1": won(date(2027, 1, 5), "900", splits=splits)}, [p], assignments=[assign("a")]
    )
    owner = next(line for line in result.lines if line.key.role == "owner")
    overlay = next(line for line in result.lines if line.key.role == "overlay")
    assert Decimal(owner.trace["position_after"]) == 90
    assert overlay.trace["position_after"] == overlay.trace["position_before"]
    assert (owner.amount, overlay.amount) == (Decimal("45.00"), Decimal("45.00"))


def test_manager_override_on_the_team_sales() -> None:
    """[V14.1] Prowi glossary, "Override commission": five reps at 10%, the manager 3% on the
    team's 300,000: 9,000, the reps' commissions unchanged (30,000)."""
    sales = {"a": "75000", "b": "60000", "c": "67500", "d": "52500", "e": "45000"}
    rep_plan = plan("rep", components=[flat_component("10")])
    manager_plan = plan(
        "mgr", components=[flat_component("3")], credit_rules={"manager_rollup": {"levels": 1}}
    )
    histories = {
        f"deal-{r}": won(date(2027, 1, 10), amount, owner=r) for r, amount in sales.items()
    }
    reporting = [ReportingLine(r, "m", date(2000, 1, 1), None) for r in sales]
    result = run(
        histories,
        [rep_plan, manager_plan],
        reporting=reporting,
        assignments=[*(assign(r, "rep") for r in sales), assign("m", "mgr")],
    )
    assert total(result, rep_id="m") == Decimal("9000.00")
    assert total(result, rep_id="m", role="manager:1") == Decimal("9000.00")
    assert sum(total(result, rep_id=r) for r in sales) == Decimal("30000.00")


def clawback(**policy: Any) -> dict[str, Any]:
    return {"window_days": 90, "triggers": ["lost", "cancelled"], **policy}


def test_clawback_at_the_original_rate_keeps_the_minimum() -> None:
    """[V15.1] Xactly, Commission Clawback: $100 at 5% with a $10 minimum; the order is
    reversed: the clawback uses the 5% rate, -$5, not the $10 paid."""
    p = plan(
        period="month",
        components=[flat_component("5", minimum_per_period="10")],
        clawback=clawback(),
    )
    history = [*won(date(2027, 1, 5), "100"), state(date(2027, 2, 10), "lost", "100")]
    result = run({"d1": history}, [p], today=date(2027, 3, 1))
    assert total(result, period="2027-01") == Decimal("10.00")
    (claw,) = [line for line in result.lines if line.key.kind is Kind.CLAWBACK]
    assert (claw.key.period, claw.amount) == ("2027-02", Decimal("-5.00"))
    assert claw.trace["clawback"]["trigger"] == "lost"


@pytest.mark.parametrize(("closed", "expected"), [(True, "-500.00"), (False, "0")])
def test_clawback_of_what_was_paid_leaves_attainment(closed: bool, expected: str) -> None:
    """[V15.2, V15.3] Spiff: a June deal paid 500, cancelled in August: reclaim the 500 paid,
    attainment unchanged. Centify: nothing paid yet, nothing clawed back."""
    p = plan(period="month", components=[flat_component("10")], clawback=clawback(base="paid"))
    history = [
        *won(date(2027, 6, 5), "5000"),
        state(date(2027, 8, 10), "won", "5000", cancelled=True),
    ]
    closed_periods = {"2027-06": datetime(2027, 7, 5, tzinfo=UTC)} if closed else {}
    result = run({"d1": history}, [p], today=date(2027, 9, 1), closed_periods=closed_periods)
    assert total(result, period="2027-08", kind=Kind.CLAWBACK) == Decimal(expected)
    assert total(result, period="2027-06") == Decimal("500.00")


def test_partial_clawback_on_early_termination() -> None:
    """[V15.4] Core8, "Clawbacks and early exit": 10,000 earned, 50% clawback: -5,000 posted
    in the clawback period."""
    p = plan(
        components=[flat_component("10")], clawback=clawback(extent="partial", partial_percent="50")
    )
    history = [*won(date(2027, 1, 5), "100000"), state(date(2027, 4, 2), "lost", "100000")]
    result = run({"d1": history}, [p])
    assert total(result, kind=Kind.CLAWBACK) == Decimal("-5000.00")
    assert total(result, kind=Kind.CLAWBACK, period="2027-Q2") == Decimal("-5000.00")


def test_clawback_prorated_by_the_contract_term_left() -> None:
    """[V15.5] Zepys: a 12-month contract cancelled after 6 months claws back 50%; on a 1,200
    commission, -600 (and after 4 months, -800)."""
    p = plan(
        components=[flat_component("10")], clawback=clawback(window_days=365, extent="prorated")
    )
    six = [
        *won(date(2027, 1, 15), "12000", contract_months="12"),
        state(date(2027, 7, 15), "won", "12000", cancelled=True, contract_months="12"),
    ]
    four = [
        *won(date(2027, 1, 15), "12000", contract_months="12"),
        state(date(2027, 5, 15), "lost", "12000", contract_months="12"),
    ]
    assert total(run({"d": six}, [p], today=date(2027, 12, 1)), kind=Kind.CLAWBACK) == Decimal(
        "-600.00"
    )
    assert total(run({"d": four}, [p], today=date(2027, 12, 1)), kind=Kind.CLAWBACK) == Decimal(
        "-800.00"
    )
    assert elapsed_months(date(2026, 1, 15), date(2026, 7, 15)) == 6
    assert elapsed_months(date(2026, 2, 15), date(2026, 3, 1)) == Decimal("0.5")


def test_no_clawback_outside_the_window_and_no_second_payment_on_rewin() -> None:
    """Derived from the plan's rule ("window after close", issue 9; `clawback.window_days`); no
    vendor example with figures. Lost 55 days after the win, outside 30 days: the 100
    stands, and winning it again books nothing new."""
    p = plan(components=[flat_component("10")], clawback=clawback(window_days=30))
    history = [
        *won(date(2027, 1, 5), "1000"),
        state(date(2027, 3, 1), "lost", "1000"),
        state(date(2027, 3, 5), "won", "1000"),
    ]
    result = run({"d": history}, [p])
    assert total(result) == Decimal("100.00")
    assert {line.key.booking for line in result.lines} == {1}


def test_won_lost_won_inside_the_window_books_twice_and_claws_back_once() -> None:
    """Derived from the plan's rules (trigger won -> lost inside the window, issue 9; each win a
    new booking); no vendor example. +100 -100 +100 = 100 over bookings 1 and 2."""
    p = plan(components=[flat_component("10")], clawback=clawback())
    history = [
        *won(date(2027, 1, 5), "1000"),
        state(date(2027, 1, 20), "lost", "1000"),
        state(date(2027, 2, 5), "won", "1000"),
    ]
    result = run({"d": history}, [p])
    assert total(result) == Decimal("100.00")
    assert total(result, kind=Kind.CLAWBACK) == Decimal("-100.00")
    assert {line.key.booking for line in result.lines} == {1, 2}


def test_amount_reduced_recalculates_at_the_original_rate() -> None:
    """Derived from the plan's rule (trigger "amount reduced", base "recomputed at the
    original rate", issue 9); Xactly's original-rate clawback [V15.1] is the same base.
    1,000 cut to 600 at 10%: 60 with the trigger, the 100 stands without it."""
    p = plan(components=[flat_component("10")], clawback=clawback(triggers=["amount_reduced"]))
    reduced = [*won(date(2027, 1, 5), "1000"), state(date(2027, 1, 25), "won", "600")]
    assert total(run({"d": reduced}, [p])) == Decimal("60.00")
    kept = plan(components=[flat_component("10")], clawback=clawback())
    assert total(run({"d": reduced}, [kept])) == Decimal("100.00")


def test_recoverable_draw_advanced_then_recovered() -> None:
    """[V16.1] Oracle Fusion IC, "Example of Incentive Compensation Draw and Recovery":
    1,000 a period, recovery of 100% of earnings above it from the fourth period: earnings
    500, 700, 400 advance 500, 300, 600 (balance 1,400); 1,500 in period 4 recovers 500."""
    p = plan(
        period="month",
        components=[flat_component("10")],
        draw={
            "kind": "recoverable",
            "amount_per_period": "1000",
            "recovery_start_period": 4,
            "recovery_percent": "100",
        },
    )
    earnings = {1: "5000", 2: "7000", 3: "4000", 4: "15000"}
    histories = {f"d{m}": won(date(2027, m, 10), amount) for m, amount in earnings.items()}
    result = run(
        histories, [p], today=date(2027, 5, 1), assignments=[assign("r1", start=date(2027, 1, 1))]
    )
    advances = [total(result, period=f"2027-0{m}", kind=Kind.DRAW_ADVANCE) for m in (1, 2, 3, 4)]
    assert advances == [Decimal("500.00"), Decimal("300.00"), Decimal("600.00"), 0]
    assert total(result, period="2027-04", kind=Kind.DRAW_RECOVERY) == Decimal("-500.00")
    (recovery,) = [line for line in result.lines if line.key.kind is Kind.DRAW_RECOVERY]
    assert Decimal(recovery.trace["balance_before"]) == 1400


def test_non_recoverable_draw_is_never_repaid() -> None:
    """[V16.3] Xactly, "Plan Design > Draws": a non-recoverable guarantee pays the difference
    between the earned and the guaranteed amount and is never recovered. Xactly gives no
    figures; ours: 1,000 guaranteed a month, 500 earned in January tops up 500, 3,000
    earned in February recovers nothing."""
    p = plan(
        period="month",
        components=[flat_component("10")],
        draw={"kind": "non_recoverable", "amount_per_period": "1000"},
    )
    histories = {"a": won(date(2027, 1, 10), "5000"), "b": won(date(2027, 2, 10), "30000")}
    result = run(
        histories, [p], today=date(2027, 3, 1), assignments=[assign("r1", start=date(2027, 1, 1))]
    )
    assert total(result, kind=Kind.DRAW_ADVANCE) == Decimal("500.00")
    assert total(result, kind=Kind.DRAW_RECOVERY) == 0


@pytest.mark.parametrize(
    ("kind", "recovered"), [("recoverable", "-1700.00"), ("non_recoverable", "0")]
)
def test_draw_tops_up_to_the_guaranteed_minimum(kind: str, recovered: str) -> None:
    """[V16.2] Oracle Sales Compensation, "Draw Compensation Example": a 2,000 draw a month;
    1,500 earned in January pays a 500 draw, 800 in February a 1,200 draw, 1,700 in all to
    recover, recovered "in a subsequent period, when the commission ... is greater than"
    the draw. Oracle gives no such period, so ours: 5,000 earned in March recovers the
    1,700 from its 3,000 above the draw. [V16.3] Xactly: a non-recoverable guarantee tops
    up the same but is never recovered."""
    draw = {"kind": kind, "amount_per_period": "2000"}
    p = plan(period="month", components=[flat_component("10")], draw=draw)
    earned = {1: "15000", 2: "8000", 3: "50000"}
    histories = {f"d{m}": won(date(2027, m, 10), amount) for m, amount in earned.items()}
    result = run(
        histories, [p], today=date(2027, 4, 1), assignments=[assign("r1", start=date(2027, 1, 1))]
    )
    advances = [total(result, period=f"2027-0{m}", kind=Kind.DRAW_ADVANCE) for m in (1, 2, 3)]
    assert advances == [Decimal("500.00"), Decimal("1200.00"), 0]
    assert total(result, period="2027-03", kind=Kind.DRAW_RECOVERY) == Decimal(recovered)
    if kind == "recoverable":
        (recovery,) = [line for line in result.lines if line.key.kind is Kind.DRAW_RECOVERY]
        assert Decimal(recovery.trace["balance_before"]) == 1700


def test_mid_month_start_prorates_quota_and_target() -> None:
    """[V17.2] theodortrampe/commission-calculator: a rep assigned on the 15th of a 31-day
    month gets 17/31 of the month's quota and target variable."""
    component = {
        "id": "c",
        "rate_table": {
            "basis": "attainment",
            "unit": "percent_of_target_per_attainment_point",
            "tiers": [{"from": "0", "rate": "1"}],
        },
    }
    p = plan(period="month", quota="31000", target_variable="3100", components=[component])
    result = run(
        {"d": won(date(2027, 1, 20), "17000")},
        [p],
        assignments=[assign("r1", start=date(2027, 1, 15))],
    )
    (line,) = result.lines
    assert Decimal(line.trace["position_after"]) == 100
    assert line.amount == Decimal("1700.00")


def test_mid_period_plan_change_splits_the_period() -> None:
    """Derived from the plan's definition ("versioned and effective-dated ... a mid-period
    change prorates correctly", issue 9); Spiff splits a period at a mid-period change
    (S5 on the reference sheet) without figures. 10% before 15 February, 20% after."""
    first = plan(components=[flat_component("10")])
    second = plan(
        version=2,
        effective_from=date(2027, 2, 15),
        components=[flat_component("20")],
        bonuses=[{"id": "b", "at_attainment": "0", "amount": "10"}],
        quota="1000",
    )
    result = run(
        {"a": won(date(2027, 1, 5), "100"), "b": won(date(2027, 3, 1), "100")}, [first, second]
    )
    assert total(result, deal_id="a") == Decimal("10.00")
    assert total(result, deal_id="b") == Decimal("20.00")
    bonuses = {
        line.key.period: line.key.rule for line in result.lines if line.key.kind is Kind.BONUS
    }
    assert bonuses == {"2027-Q1": "b@2027-02-15", "2027-Q2": "b"}


def test_pay_on_cash_share_follows_invoices() -> None:
    """[V18.2] frappe/erpnext#25239: a 10,000 sale with 5,000 paid: commission on 5,000."""
    p = plan(components=[flat_component("10")], payment={"timing": "on_cash"})
    result = run({"d": won(date(2027, 1, 5), "10000")}, [p])
    booking = result.lines[0].trace["credit"]
    assert booking["amount"] == "10000"
    from services.comp_engine.calc.bookings import bookings

    (b,) = bookings("d", won(date(2027, 1, 5), "10000"), None)
    inputs = Inputs(
        plans={},
        assignments=[],
        payments=[Payment("d", "inv-1", datetime(2027, 2, 1, tzinfo=UTC), Decimal("5000"), "USD")],
    )
    assert paid_share(b, inputs, datetime(2027, 3, 1, tzinfo=UTC)) == Decimal("0.5")
    assert paid_share(b, inputs, datetime(2027, 1, 31, tzinfo=UTC)) == 0


def test_pay_on_cash_eligible_share_of_the_invoice_received() -> None:
    """[V18.3] QuotaPath, "Payouts Eligibility": with eligibility by invoice, "if the total
    invoice received amount is $5,000 and the total deal value is $10,000, 50% of the
    earnings will be eligible". At 10%: 1,000 earned, 500 payable."""
    p = plan(components=[flat_component("10")], payment={"timing": "on_cash"})
    received = Payment("d", "inv-1", datetime(2027, 2, 1, 9, tzinfo=UTC), Decimal("5000"), "USD")
    result = run({"d": won(date(2027, 1, 5), "10000")}, [p], payments=[received])
    assert total(result, kind=Kind.COMMISSION) == Decimal("1000.00")
    assert total(result, kind=Kind.PAYABLE_DEFERRAL) == Decimal("-1000.00")
    assert total(result, kind=Kind.PAYABLE_RELEASE) == Decimal("500.00")
    assert total(result) == Decimal("500.00")


def test_lines_in_the_payout_currency_at_the_booking_day_rate() -> None:
    """[V20.1] A commission of GBP 100 paid in USD at 1.22 is USD 122."""
    p = plan(currency="GBP", components=[flat_component("10")])
    fx = FxTable([FxRate("GBP", "USD", date(2027, 1, 1), Decimal("1.22"))])
    result = run(
        {"d": won(date(2027, 1, 5), "1000", currency="GBP")},
        [p],
        fx=fx,
        assignments=[assign("r1", payout_currency="USD")],
    )
    (line,) = result.lines
    assert (line.amount, line.currency) == (Decimal("122.00"), "USD")
    assert line.trace["fx_rate_to_payout"] == "1.22"


def test_a_deal_without_a_rate_waits_with_the_reason() -> None:
    """Derived from issue 9's rule: "a deal in a currency without a rate waits in the DLQ with
    the reason until the rate arrives"; no vendor example."""
    p = plan(components=[flat_component("10")])
    result = run(
        {
            "eur": won(date(2027, 1, 5), "1000", currency="EUR"),
            "usd": won(date(2027, 1, 5), "1000"),
        },
        [p],
    )
    assert [w.subject for w in result.waiting] == ["eur"]
    assert "EUR->USD" in result.waiting[0].reason
    assert total(result) == Decimal("100.00")


def test_attainment_table_without_a_quota_waits() -> None:
    """Derived from the plan's definition (tiers on attainment need a quota per period, issue
    9); no vendor example: without one the period waits with the reason."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "1"}]},
    }
    result = run({"d": won(date(2027, 1, 5), "1000")}, [plan(components=[component])])
    assert result.lines == []
    assert (result.waiting[0].rep_id, result.waiting[0].subject) == ("r1", "period:2000-Q1")
    assert "no quota" in result.waiting[0].reason


def test_rounding_never_drifts_across_many_deals() -> None:
    """Derived from the ledger's rule (amounts in Decimal with documented rounding, issue 9;
    `series` rounds a running total); no vendor example. 30 x 3.333% of 0.10 = 0.09999,
    0.10 in all, not 30 x 0.00."""
    p = plan(components=[flat_component("3.333")])
    histories = {f"d{i:02d}": won(date(2027, 1, 5), "0.10") for i in range(30)}
    result = run(histories, [p])
    assert total(result) == Decimal("0.10")


@pytest.mark.parametrize(
    ("amount", "commission"), [("0.65", "0.07"), ("3.25", "0.33"), ("3.45", "0.35")]
)
def test_half_a_cent_rounds_up_whatever_route_the_amount_took(amount: str, commission: str) -> None:
    """Derived from the ledger's rounding rule (half-up to the cent, issue 9's "documented
    rounding"); no vendor example. 10% of 0.65 is 0.065, half-up 0.07. On a quota of 310
    the attainment position is 0.65 / 3.1 (non-terminating), and the walk's 28-digit
    arithmetic gave 0.0649999999999999999999999999, which rounded down to 0.06 until
    amounts were settled at 15 places before rounding (`lines.rounded`); the trace must
    redo the same cent."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "10"}]},
    }
    result = run({"d": won(date(2027, 1, 5), amount)}, [plan(quota="310", components=[component])])
    (line,) = result.lines
    assert line.amount == Decimal(commission)
    assert recompute(line.trace) == line.amount


def test_a_period_under_way_keeps_its_whole_quota() -> None:
    """Derived from the plan's definition (quota per period; proration only for a mid-period
    start or change, issue 9); no vendor example. 60,000 on a 250,000 quarter is 24%, at
    8% = 4,800, whatever day the run is."""
    component = {
        "id": "c",
        "rate_table": {"basis": "attainment", "tiers": [{"from": "0", "rate": "8"}]},
    }
    p = plan(quota="250000", components=[component])
    result = run(
        {"d": won(date(2026, 11, 9), "60000")},
        [p],
        today=date(2026, 11, 30),
        assignments=[assign("r1", start=date(2026, 1, 1))],
    )
    (line,) = result.lines
    assert Decimal(line.trace["position_after"]) == 24
    assert line.amount == Decimal("4800.00")
