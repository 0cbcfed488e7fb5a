"""Posting differences into an append-only ledger, and closed periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.calc.lines import LineKey
from services.comp_engine.calc.posting import Posted, Posting, differences, first_open
from services.comp_engine.calc.trace_check import recompute
from services.comp_engine.statements.explain import explain
from tests.support.comp import assign, flat_component, plan, state, tiers, won

TODAY = date(2027, 6, 1)


def ledger_after(*steps: tuple[dict[str, list[DealState]], set[str]]) -> list[list[Posting]]:
    version = plan(
        period="month",
        components=[flat_component("10")],
        clawback={"window_days": 365, "triggers": ["amount_reduced"]},
    )
    inputs = Inputs(plans={"p": [version]}, assignments=[assign("r1")])
    ledger: list[Posted] = []
    postings = []
    for history, closed in steps:
        result = compute(history, inputs, today=TODAY)
        new = differences(result.lines, ledger, closed=closed)
        postings.append(new)
        ledger += [Posted(p.key, p.amount, p.currency) for p in new]
    return postings


def test_a_change_after_close_posts_a_prior_period_adjustment() -> None:
    """[V21.1] Fullcast, Adjustments: a 250 commission becomes 350 after the CRM amount
    changes; once committed, the +100 is a new entry, never an edit of the first."""
    first = {"d": won(date(2027, 1, 10), "2500")}
    changed = {"d": [*won(date(2027, 1, 10), "2500"), state(date(2027, 3, 5), "won", "3500")]}
    before, after = ledger_after((first, set()), (changed, {"2027-01", "2027-02"}))
    assert [(p.amount, p.posted_period) for p in before] == [(Decimal("250.00"), "2027-01")]
    (adjustment,) = after
    assert (adjustment.amount, adjustment.key.period) == (Decimal("100.00"), "2027-01")
    assert adjustment.posted_period == "2027-03"
    assert adjustment.prior_period
    assert recompute(adjustment.trace) == adjustment.amount


def test_a_line_no_longer_expected_is_reversed() -> None:
    ledger = [Posted(key, Decimal("40.00"), "USD") for key in _keys()]
    (reversal,) = differences([], ledger, closed=set())
    assert reversal.amount == Decimal("-40.00")
    assert reversal.trace["no_longer_expected"]
    assert recompute(reversal.trace) == reversal.amount


def test_a_key_of_several_lines_posts_a_trace_that_recomputes_the_posting() -> None:
    """Found by tests/unit/comp/test_event_fold_properties.py. d2 (200) lifts attainment
    past 50% (retroactive: +40.00); lost four days later, its reversal takes attainment
    back under (-30.00, on d2's own commission key): the key holds 10.00, and its
    posting's trace carries both lines as `parts`, which recompute to 10.00 (the last
    line's trace alone recomputed to -30.00)."""
    version = plan(
        period="month",
        quota="1000",
        components=[
            {
                "id": "c",
                "rate_table": {
                    "basis": "attainment",
                    "mode": "retroactive",
                    "tiers": tiers(("0", "50", "5"), ("50", None, "10")),
                },
            }
        ],
        clawback={"window_days": 30, "triggers": ["lost"], "reduces_attainment": True},
    )
    history = {
        "d1": won(date(2027, 1, 5), "400"),
        "d2": [state(date(2027, 1, 6), "won", "200"), state(date(2027, 1, 10), "lost", "200")],
    }
    result = compute(
        history, Inputs(plans={"p": [version]}, assignments=[assign("r1")]), today=TODAY
    )
    d2 = [
        line.amount
        for line in result.lines
        if line.key.kind == "commission" and line.key.deal_id == "d2"
    ]
    assert d2 == [Decimal("40.00"), Decimal("-30.00")]
    postings = differences(result.lines, [], closed=set())
    for posting in postings:
        assert recompute(posting.trace) == posting.amount, posting.key
    (both,) = [p for p in postings if p.key.deal_id == "d2" and p.key.kind == "commission"]
    assert both.amount == Decimal("10.00")
    assert [recompute(part) for part in both.trace["parts"]] == d2
    words = explain(both.key.kind.value, both.trace, both.amount, both.currency)
    assert words.startswith("2 lines of one key (rep, period, kind, rule, deal), together: Deal d2")
    assert "= 40.00 USD." in words
    assert "= -30.00 USD." in words


def test_first_open_period_skips_every_closed_one() -> None:
    assert first_open("2027-Q1", {"2027-Q1", "2027-Q2"}) == "2027-Q3"
    assert first_open("2027-11", set()) == "2027-11"


def _keys() -> list[LineKey]:
    result = compute(
        {"d": won(date(2027, 4, 10), "400")},
        Inputs(plans={"p": [plan(components=[flat_component("10")])]}, assignments=[assign("r1")]),
        today=TODAY,
    )
    return [line.key for line in result.lines]
