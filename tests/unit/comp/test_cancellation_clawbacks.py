"""Clawbacks on a `deal.cancelled` event, through the comp engine's own fold of stored
changes (`deals/history.py`) and the whole calculation. Every expected figure is worked by
hand in the test's docstring, which names its source ([Vn.m] keys, addresses in
tests/unit/comp/WORKED_EXAMPLES.md) or the plan rule it is derived from; the plan pays a
flat 10% per quarter unless a test says otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.lines import Kind, Line
from services.comp_engine.deals.history import CANCELLED, StageNames, StoredChange, states
from services.comp_engine.simulate.run import draft, inline_inputs
from services.comp_engine.simulate.schemas import ChangeIn, SimulateIn
from services.comp_engine.statements.explain import explain
from shared.ordering import OrderKey
from tests.support.comp import flat_component, plan, tiers
from tests.unit.comp.test_engine_examples import run, total

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
NAMES = StageNames.of(["won"], ["lost"])
TODAY = date(2027, 12, 31)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def change(day: date, event_type: str, fields: dict[str, Any], event_id: str) -> StoredChange:
    return StoredChange(OrderKey(at(day), -1, "test", event_id), event_type, fields)


def won(day: date, amount: str, **properties: Any) -> StoredChange:
    fields = {
        "owner_id": "r1",
        "amount": amount,
        "currency": "USD",
        "stage": "won",
        "close_date": day.isoformat(),
        "properties": properties,
    }
    return change(day, CREATED, fields, f"won-{day}")


def cancelled(
    day: date, *, on: date | None = None, contract_end: date | None = None
) -> StoredChange:
    """A cancellation posted on `day`, effective `on` (the same day unless given)."""
    fields = {
        "cancelled_at": at(on or day).isoformat(),
        "reason": "customer churned",
        "contract_end": None if contract_end is None else contract_end.isoformat(),
    }
    return change(day, CANCELLED, fields, f"cancel-{day}")


def history(*changes: StoredChange) -> list[DealState]:
    return states(list(changes), NAMES)


def policy(**overrides: Any) -> dict[str, Any]:
    return {"window_days": 90, "triggers": ["cancelled"], **overrides}


def claw(result: Any) -> Line:
    (line,) = [line for line in result.lines if line.key.kind is Kind.CLAWBACK]
    return line


def test_full_clawback_names_the_cancellation_and_leaves_the_deal_won() -> None:
    """[V15.1] Xactly: a clawback reverses the commission at the original rate. [V15.2]
    Spiff: a cancelled deal's commission comes back as a negative entry referring to the
    deal. The figures are ours: 10,000 won on 5 January earns 10% = 1,000; cancelled on 10
    February, 36 days later, inside the 90-day window: the full 1,000 comes back, -1,000,
    in 2027-Q1."""
    p = plan(components=[flat_component("10")], clawback=policy())
    deal = history(won(date(2027, 1, 5), "10000"), cancelled(date(2027, 2, 10)))
    assert deal[-1].status == "won"
    result = run({"d1": deal}, [p], today=TODAY)
    line = claw(result)
    assert (line.key.period, line.amount) == ("2027-Q1", Decimal("-1000.00"))
    assert total(result) == Decimal("0.00")
    trace = line.trace
    assert trace["clawback"]["trigger"] == "cancelled"
    assert trace["clawback"]["event_id"] == "cancel-2027-02-10"
    assert trace["clawback"]["cancellation"] == {
        "event_id": "cancel-2027-02-10",
        "cancelled_at": "2027-02-10T12:00:00+00:00",
        "reason": "customer churned",
        "contract_end": None,
    }
    assert (trace["clawback"]["base"], trace["earned"]) == ("original_rate", "1000.00")
    assert trace["extent_factor"] == "1"


def test_partial_clawback_takes_its_percent() -> None:
    """[V15.4] Core8, "Clawbacks and early exit": a partial clawback takes its percent of
    the commission (their 10,000 at 50% is -5,000, reproduced in test_engine_examples).
    Ours: 1,000 earned on 10,000, a 25% partial clawback: -250."""
    p = plan(
        components=[flat_component("10")],
        clawback=policy(extent="partial", partial_percent="25"),
    )
    deal = history(won(date(2027, 1, 5), "10000"), cancelled(date(2027, 3, 1)))
    line = claw(run({"d1": deal}, [p], today=TODAY))
    assert line.amount == Decimal("-250.00")
    assert Decimal(line.trace["extent_factor"]) == Decimal("0.25")


def test_prorated_by_the_term_elapsed_up_to_the_contract_end() -> None:
    """[V15.5] Zepys (not a vendor): prorate the clawback by the contract term left (their
    12-month contract cancelled after 6 months claws back 50%). Ours: 12,000 won on 15
    January earns 1,200; the contract would have ended on 15 January
    2028, a 12-month term; cancelled on 15 April after 3 whole months, 9 of 12 months were
    still to run: 1,200 x 9/12 = -900."""
    p = plan(components=[flat_component("10")], clawback=policy(extent="prorated"))
    deal = history(
        won(date(2027, 1, 15), "12000"),
        cancelled(date(2027, 4, 15), contract_end=date(2028, 1, 15)),
    )
    line = claw(run({"d1": deal}, [p], today=TODAY))
    assert line.amount == Decimal("-900.00")
    assert Decimal(line.trace["extent_factor"]) == Decimal("0.75")
    assert line.trace["clawback"]["term"] == {
        "start": "2027-01-15",
        "months": "12",
        "elapsed_months": "3",
    }
    assert line.trace["clawback"]["cancellation"]["contract_end"] == "2028-01-15"
    assert explain(line.key.kind.value, line.trace, line.amount, line.currency) == (
        "Deal d1 was cancelled on 2027-04-15 (customer churned; contract ends 2028-01-15), "
        "within the 90-day clawback window: 1,200.00 it earned in 2027-Q1 x paid share 1 x "
        "prorated extent 0.75 (3 of the 12 contract months from 2027-01-15 elapsed) "
        "= -900.00 USD. Plan p, version 1."
    )


def test_the_cancellations_contract_end_outranks_the_deals_term() -> None:
    """Derived from the plan's definition ("prorated by elapsed contract term", issue 9;
    the `deal.cancelled` event's `contract_end`); no vendor example. The deal says 24
    months, but the cancellation says the contract ends on 15 July, 6
    months after the 15 January booking; cancelled on 15 April, 3 months in: 3 of 6 left,
    1,200 x 1/2 = -600. Without a `contract_end` the deal's 24 months hold: 21 of 24 left,
    1,200 x 7/8 = -1,050."""
    p = plan(components=[flat_component("10")], clawback=policy(extent="prorated"))
    with_end = history(
        won(date(2027, 1, 15), "12000", contract_months="24"),
        cancelled(date(2027, 4, 15), contract_end=date(2027, 7, 15)),
    )
    without = history(
        won(date(2027, 1, 15), "12000", contract_months="24"), cancelled(date(2027, 4, 15))
    )
    assert claw(run({"d1": with_end}, [p], today=TODAY)).amount == Decimal("-600.00")
    assert claw(run({"d1": without}, [p], today=TODAY)).amount == Decimal("-1050.00")


def test_a_contract_already_over_claws_back_nothing() -> None:
    """Derived from the plan's definition ("prorated by elapsed contract term"); no vendor
    example. A contract_end on the booking day leaves no term to run: 0 of 0 months,
    nothing."""
    p = plan(components=[flat_component("10")], clawback=policy(extent="prorated"))
    deal = history(
        won(date(2027, 1, 15), "12000"),
        cancelled(date(2027, 2, 15), contract_end=date(2027, 1, 15)),
    )
    result = run({"d1": deal}, [p], today=TODAY)
    assert total(result, kind=Kind.CLAWBACK) == Decimal(0)
    assert total(result) == Decimal("1200.00")


def test_outside_the_window_nothing_and_no_second_booking() -> None:
    """Derived from the plan's definition ("window after close", issue 9; `window_days`);
    no vendor example with figures. Window 30 days: won 5 January, cancelled 1 March (55
    days): the 1,000 stands. A
    later change to the cancelled, still won deal does not pay it a second time."""
    p = plan(components=[flat_component("10")], clawback=policy(window_days=30))
    renamed = change(date(2027, 3, 20), UPDATED, {"name": "renamed"}, "rename")
    deal = history(won(date(2027, 1, 5), "10000"), cancelled(date(2027, 3, 1)), renamed)
    result = run({"d1": deal}, [p], today=TODAY)
    assert total(result, kind=Kind.CLAWBACK) == Decimal(0)
    assert total(result) == Decimal("1000.00")
    assert {line.key.booking for line in result.lines} == {1}


def test_the_window_counts_from_cancelled_at_not_from_when_it_was_posted() -> None:
    """Derived from the plan's definition (the window runs from close to the cancellation's
    `cancelled_at`); no vendor example. Posted on 20 April (105 days after the 5 January
    win, outside 90 days) but effective
    1 March (55 days, inside): -1,000, in the period of 1 March (2027-Q1). Posted within the
    window but effective after it (won 5 January, posted 1 March, effective 10 April, 95
    days): nothing."""
    p = plan(components=[flat_component("10")], clawback=policy())
    late = history(
        won(date(2027, 1, 5), "10000"), cancelled(date(2027, 4, 20), on=date(2027, 3, 1))
    )
    line = claw(run({"d1": late}, [p], today=TODAY))
    assert (line.key.period, line.amount) == ("2027-Q1", Decimal("-1000.00"))
    ahead = history(
        won(date(2027, 1, 5), "10000"), cancelled(date(2027, 3, 1), on=date(2027, 4, 10))
    )
    assert total(run({"d1": ahead}, [p], today=TODAY), kind=Kind.CLAWBACK) == Decimal(0)


def test_cancellation_then_loss_and_new_win_books_again() -> None:
    """Derived from the plan's definition (each win is a new booking; a trigger claws back
    only the booking it hit); no vendor example. After the cancellation clawed back booking
    1 (+1,000 -1,000), the deal is lost and
    won again at 5,000: booking 2 earns 500. Total 500."""
    p = plan(components=[flat_component("10")], clawback=policy(triggers=["cancelled"]))
    lost = change(date(2027, 2, 20), UPDATED, {"stage": "lost"}, "lost")
    again = change(date(2027, 3, 1), UPDATED, {"stage": "won", "amount": "5000"}, "again")
    deal = history(won(date(2027, 1, 5), "10000"), cancelled(date(2027, 2, 10)), lost, again)
    result = run({"d1": deal}, [p], today=TODAY)
    assert total(result) == Decimal("500.00")
    assert total(result, booking=2) == Decimal("500.00")


def test_cancelling_an_open_deal_changes_nothing() -> None:
    """Derived from the plan's definition (a clawback needs a booking to reverse); no
    vendor example. A cancellation of a deal not won is ignored: its later win books 1,000
    and stands."""
    p = plan(components=[flat_component("10")], clawback=policy())
    opened = change(
        date(2027, 1, 2),
        CREATED,
        {"owner_id": "r1", "amount": "10000", "currency": "USD", "stage": "open"},
        "opened",
    )
    closed = change(date(2027, 1, 5), UPDATED, {"stage": "won", "close_date": "2027-01-05"}, "w")
    deal = history(opened, cancelled(date(2027, 1, 3)), closed)
    assert [s.cancelled for s in deal] == [False, False, False]
    assert total(run({"d1": deal}, [p], today=TODAY)) == Decimal("1000.00")


def _attainment_plan(reduces: bool) -> Any:
    component = {
        "id": "c",
        "rate_table": {
            "basis": "attainment",
            "tiers": tiers(("0", "100", "10"), ("100", None, "20")),
        },
    }
    return plan(quota="10000", components=[component], clawback=policy(reduces_attainment=reduces))


def test_attainment_reduced_or_not() -> None:
    """[V15.2] Spiff: a clawback does not deduct the deal from quota attainment (the
    `reduces_attainment: false` case); issue 9's "whether attainment is reduced" gives the
    other. The figures are ours. Quota 10,000 a quarter; 10% up to 100% attainment, 20%
    above. Deal A, 10,000 on 5
    January, reaches 100% and earns 1,000; it is cancelled on 10 February (-1,000). Deal B,
    5,000 on 1 March:
    - attainment reduced: A's 10,000 of quota credit is reversed in February, so B starts
      from 0% and earns 10% = 500; the quarter nets 1,000 - 1,000 + 500 = 500;
    - not reduced: B starts from 100% and earns 20% = 1,000; the quarter nets 1,000."""
    a = history(won(date(2027, 1, 5), "10000"), cancelled(date(2027, 2, 10)))
    b = history(won(date(2027, 3, 1), "5000"))
    reduced = run({"a": a, "b": b}, [_attainment_plan(True)], today=TODAY)
    kept = run({"a": a, "b": b}, [_attainment_plan(False)], today=TODAY)
    assert total(reduced, deal_id="b") == Decimal("500.00")
    assert total(reduced) == Decimal("500.00")
    assert total(kept, deal_id="b") == Decimal("1000.00")
    assert total(kept) == Decimal("1000.00")
    assert claw(reduced).amount == claw(kept).amount == Decimal("-1000.00")


def test_simulate_takes_an_inline_cancellation() -> None:
    """[V15.5] as in the prorated test above, given to `POST /v1/comp/simulate` inline: the
    same -900.
    A change of type 'cancelled' without its cancellation (or the other way round) is bad
    input."""
    document = {
        "name": "p",
        "currency": "USD",
        "target_variable": "0",
        "components": [flat_component("10")],
        "clawback": policy(extent="prorated"),
    }
    deal = {
        "deal_id": "d1",
        "changes": [
            {
                "time": "2027-01-15T12:00:00Z",
                "type": "created",
                "fields": {
                    "owner_id": "r1",
                    "amount": "12000",
                    "currency": "USD",
                    "stage": "won",
                    "close_date": "2027-01-15",
                },
            },
            {
                "time": "2027-04-15T12:00:00Z",
                "type": "cancelled",
                "cancellation": {
                    "cancelled_at": "2027-04-15T12:00:00Z",
                    "reason": "churn",
                    "contract_end": "2028-01-15",
                },
            },
        ],
    }
    body = SimulateIn.model_validate(
        {
            "plan": document,
            "inline": {"deals": [deal], "assignments": [{"rep_id": "r1", "start": "2027-01-01"}]},
        }
    )
    assert body.inline is not None
    histories, inputs = inline_inputs(body.inline, draft(body), NAMES)
    result = compute(histories, inputs, today=TODAY)
    assert claw(result).amount == Decimal("-900.00")
    with pytest.raises(ValidationError, match="exactly when type is 'cancelled'"):
        ChangeIn.model_validate({"time": "2027-04-15T12:00:00Z", "type": "cancelled"})
