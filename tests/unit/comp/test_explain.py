"""Statement lines in plain words, from traces the engine wrote (the README's example)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Inputs, Payment
from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.posting import differences
from services.comp_engine.statements.explain import explain
from tests.support.comp import assign, plan, state, won

AE = plan(
    "ae-2026",
    effective_from=date(2026, 1, 1),
    quota="250000",
    components=[
        {
            "id": "new-business",
            "rate_table": {
                "basis": "attainment",
                "tiers": [{"from": "0", "to": "100", "rate": "8"}, {"from": "100", "rate": "12"}],
            },
        }
    ],
    clawback={"window_days": 90, "triggers": ["lost"]},
)


def explained(history: list[DealState], today: date = date(2026, 11, 30)) -> dict[Kind, str]:
    inputs = Inputs(
        plans={"ae-2026": [AE]}, assignments=[assign("rep-7", "ae-2026", date(2026, 1, 1))]
    )
    result = compute({"D-9": history}, inputs, today=today)
    return {
        p.key.kind: explain(p.key.kind.value, p.trace, p.amount, p.currency)
        for p in differences(result.lines, [], closed=set())
    }


def test_commission_line_in_plain_words() -> None:
    (text,) = explained(won(date(2026, 11, 9), "60000.00", owner="rep-7")).values()
    assert text == (
        "Deal D-9 booked 2026-11-09, owner credit 100% of 60,000.00 USD: 60,000.00 at 8% "
        "(tier 1) (marginal; attainment 0% -> 24%) = 4,800.00 USD. Plan ae-2026, version 1."
    )


def test_clawback_line_in_plain_words() -> None:
    lines = explained(
        [
            *won(date(2026, 8, 9), "60000.00", owner="rep-7"),
            state(date(2026, 10, 1), "lost", "60000.00", owner="rep-7"),
        ]
    )
    assert lines[Kind.CLAWBACK] == (
        "Deal D-9 was lost on 2026-10-01, within the 90-day clawback window: 4,800.00 it "
        "earned in 2026-Q3 x paid share 1 x full extent 1 = -4,800.00 USD. Plan ae-2026, "
        "version 1."
    )


def test_every_line_names_the_plan_version_that_made_it() -> None:
    """A commission, its clawback, the pay-on-cash deferral and release and the payout
    cap's excess and carry: each line's trace names the plan version (the line's cause),
    and its sentence says it."""
    version = plan(
        "cash-2026",
        version=3,
        effective_from=date(2026, 1, 1),
        clawback={"window_days": 90, "triggers": ["lost"]},
        payment={"timing": "on_cash", "max_payable_per_period": "500"},
    )
    paid = Payment("D-1", "inv-1", datetime(2026, 2, 20, tzinfo=UTC), Decimal(10000), "USD")
    inputs = Inputs(
        plans={"cash-2026": [version]},
        assignments=[assign("rep-7", "cash-2026", date(2026, 1, 1))],
        payments=[paid],
    )
    histories = {
        "D-1": won(date(2026, 2, 1), "10000", owner="rep-7"),
        "D-2": [
            *won(date(2026, 2, 3), "8000", owner="rep-7"),
            state(date(2026, 3, 1), "lost", "8000", owner="rep-7"),
        ],
    }
    lines = compute(histories, inputs, today=date(2026, 12, 31)).lines
    kinds = {line.key.kind for line in lines}
    assert {
        Kind.COMMISSION,
        Kind.CLAWBACK,
        Kind.PAYABLE_DEFERRAL,
        Kind.PAYABLE_RELEASE,
        Kind.PAYOUT_CAP_EXCESS,
        Kind.PAYOUT_CAP_CARRY_IN,
    } <= kinds
    for line in lines:
        text = explain(line.key.kind.value, line.trace, line.amount, line.currency)
        assert text.endswith(" Plan cash-2026, version 3."), (line.key, text)
