"""Properties of the calculation over generated plans and deal histories: every line's trace
redoes its amount, the answer does not depend on how often it is computed or in which order
deals arrived, posting the answer twice posts nothing, and a marginal table's lines add up
to the table's value at the period's total."""

from __future__ import annotations

import json
import pickle
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import Result, compute
from services.comp_engine.calc.inputs import Inputs, Payment, PlanVersion
from services.comp_engine.calc.lines import Kind, rounded
from services.comp_engine.calc.posting import Posted, differences
from services.comp_engine.calc.rates import Table, Tier, TierMode, earned
from services.comp_engine.calc.segments import same_lines_on
from services.comp_engine.calc.trace_check import recompute
from tests.support.comp import assign, plan, state
from tests.support.comp_strategies import (
    REPS,
    START,
    TODAY,
    amounts,
    inputs_for,
    payments,
    plans,
    rates_,
    totals,
)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, list[DealState]]:
    found = {}
    for number in range(draw(st.integers(min_value=1, max_value=8))):
        day = START + timedelta(days=draw(st.integers(min_value=0, max_value=330)))
        states = []
        for step in range(draw(st.integers(min_value=1, max_value=5))):
            day += timedelta(days=draw(st.integers(min_value=0, max_value=60)))
            status = draw(st.sampled_from(["won", "won", "won", "lost", "open", "deleted"]))
            splits = None
            if draw(st.integers(min_value=0, max_value=4)) == 0:
                splits = [("r1", "60", "revenue"), ("r2", "40", "revenue"), ("r3", "25", "overlay")]
            states.append(
                state(
                    day,
                    status,
                    draw(amounts),
                    owner=draw(st.sampled_from(REPS)),
                    splits=splits,
                    hour=step,
                    cancelled=status == "won" and draw(st.integers(0, 6)) == 0,
                    event_id=f"d{number}-{step}",
                )
            )
        found[f"d{number}"] = states
    return found


@settings(max_examples=150, deadline=None)
@given(plans(), histories(), payments())
def test_every_line_recomputes_from_its_trace(
    version: PlanVersion, deals: dict[str, list[DealState]], paid: list[Payment]
) -> None:
    result = compute(deals, inputs_for(version, paid), today=TODAY)
    for line in result.lines:
        assert recompute(line.trace) == line.amount, (line.key, line.trace)


@settings(max_examples=100, deadline=None)
@given(plans(), histories(), payments())
def test_a_lines_attainment_is_its_traces_position_after(
    version: PlanVersion, deals: dict[str, list[DealState]], paid: list[Payment]
) -> None:
    """The simulation's bands read `Line.attainment` and the key's rule instead of building
    traces: they must be the trace's figures exactly where the trace has them, kept through
    a worker's pickle."""
    result = compute(deals, inputs_for(version, paid), today=TODAY)
    for line in result.lines:
        trace = line.trace
        expected = (
            Decimal(trace["position_after"])
            if line.key.kind is Kind.COMMISSION and trace.get("basis") == "attainment"
            else None
        )
        assert line.attainment == expected, (line.key, trace)
        if expected is not None:
            assert line.key.rule == trace["component"]
        assert pickle.loads(pickle.dumps(line)).attainment == expected


@settings(max_examples=100, deadline=None)
@given(plans(), histories(), payments(), st.randoms(use_true_random=False))
def test_the_answer_depends_on_the_stream_not_its_arrival(
    version: PlanVersion,
    deals: dict[str, list[DealState]],
    paid: list[Payment],
    rnd: random.Random,
) -> None:
    first = compute(deals, inputs_for(version, paid), today=TODAY)
    shuffled = dict(rnd.sample(sorted(deals.items()), len(deals)))
    reordered = rnd.sample(paid, len(paid))
    again = compute(shuffled, inputs_for(version, reordered), today=TODAY)
    assert totals(first.lines) == totals(again.lines)


@settings(max_examples=100, deadline=None)
@given(
    plans(),
    histories(),
    payments(),
    st.sets(st.sampled_from(["2027-01", "2027-02", "2027-Q1", "2027-Q2"])),
)
def test_posting_the_answer_twice_posts_nothing(
    version: PlanVersion,
    deals: dict[str, list[DealState]],
    paid: list[Payment],
    closed: set[str],
) -> None:
    result = compute(deals, inputs_for(version, paid), today=TODAY)
    first = differences(result.lines, [], closed=closed)
    posted = [Posted(p.key, p.amount, p.currency) for p in first]
    assert differences(result.lines, posted, closed=closed) == []
    assert all(p.posted_period not in closed for p in first)


@settings(max_examples=100, deadline=None)
@given(plans(), histories(), histories(), payments(), st.integers(min_value=0, max_value=10))
def test_growing_history_posts_exactly_the_change(
    version: PlanVersion,
    before: dict[str, list[DealState]],
    later: dict[str, list[DealState]],
    paid: list[Payment],
    known: int,
) -> None:
    """Events that arrive later (new deals, later changes of known ones, more invoices
    paid) post differences; what the ledger holds then equals a computation from scratch."""
    grown = {k: list(v) for k, v in before.items()}
    for deal_id, states in later.items():
        grown.setdefault(deal_id, []).extend(
            s for s in states if not grown[deal_id] or s.at > grown[deal_id][-1].at
        )
    closed = {"2027-01", "2027-Q1"}
    ledger: list[Posted] = []
    for deals, payments_so_far in ((before, paid[:known]), (grown, paid)):
        result = compute(deals, inputs_for(version, payments_so_far), today=TODAY)
        ledger += [
            Posted(p.key, p.amount, p.currency)
            for p in differences(result.lines, ledger, closed=closed)
        ]
    final = compute(grown, inputs_for(version, paid), today=TODAY)
    assert totals(ledger) == totals(final.lines)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=20), rates_, rates_
)
def test_marginal_lines_add_up_to_the_table_at_the_total(
    deals: list[int], low: str, high: str
) -> None:
    version = plan(
        components=[
            {
                "id": "c",
                "rate_table": {
                    "basis": "period_amount",
                    "tiers": [
                        {"from": "0", "to": "40000", "rate": low},
                        {"from": "40000", "rate": high},
                    ],
                },
            }
        ]
    )
    day = date(2027, 1, 10)
    histories = {
        f"d{i:02d}": [state(day, "won", str(a), owner="r1", hour=i % 24)]
        for i, a in enumerate(deals)
    }
    result = compute(
        histories, Inputs(plans={"p": [version]}, assignments=[assign("r1")]), today=TODAY
    )
    table = Table(
        (Tier(Decimal(0), Decimal(40000), Decimal(low)), Tier(Decimal(40000), None, Decimal(high))),
        TierMode.MARGINAL,
        version.document.components[0].rate_table.boundary,
        Decimal("0.01"),
    )
    lines = [line.amount for line in result.lines if line.key.kind is Kind.COMMISSION]
    assert sum(lines, Decimal(0)) == rounded(earned(table, Decimal(sum(deals)))[0], "USD")


days = st.integers(min_value=0, max_value=540).map(lambda n: START + timedelta(days=n))


@settings(max_examples=150, deadline=None)
@given(plans(), histories(), payments(), days, days)
def test_days_same_lines_on_calls_equivalent_compute_alike(
    version: PlanVersion,
    deals: dict[str, list[DealState]],
    paid: list[Payment],
    day: date,
    other: date,
) -> None:
    """A stored simulation reads a rep's ledger computed for one day as the computation for
    another when `same_lines_on` says so: every line (traces included) must then be equal."""
    inputs = inputs_for(version, paid)
    first = compute(deals, inputs, today=day)
    second = compute(deals, inputs, today=other)
    for rep in REPS:
        if same_lines_on(rep, inputs, day, other):
            assert _rep_lines(first, rep) == _rep_lines(second, rep), (rep, day, other)


def test_same_lines_on_turns_at_a_period_end() -> None:
    """A minimum is topped up once its period has ended: the days either side of a quarter's
    end compute different lines, and `same_lines_on` says so; two days inside one quarter
    compute the same lines."""
    version = plan(
        period="quarter",
        quota="1000",
        components=[
            {
                "id": "c",
                "minimum_per_period": "100",
                "rate_table": {"basis": "period_amount", "tiers": [{"from": "0", "rate": "1"}]},
            }
        ],
    )
    inputs = inputs_for(version)
    deals = {"d": [state(date(2027, 2, 1), "won", "1000", owner="r1")]}
    inside, end, after = date(2027, 2, 10), date(2027, 3, 31), date(2027, 4, 1)
    assert same_lines_on("r1", inputs, inside, end)
    assert _rep_lines(compute(deals, inputs, today=inside), "r1") == _rep_lines(
        compute(deals, inputs, today=end), "r1"
    )
    assert not same_lines_on("r1", inputs, end, after)
    assert _rep_lines(compute(deals, inputs, today=end), "r1") != _rep_lines(
        compute(deals, inputs, today=after), "r1"
    )


def _rep_lines(result: Result, rep: str) -> list[tuple[Any, ...]]:
    return [
        (line.key, line.amount, line.currency, json.dumps(line.trace, sort_keys=True))
        for line in result.lines
        if line.key.rep_id == rep
    ]
