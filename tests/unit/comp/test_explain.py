"""Statement lines in plain words, from traces the engine wrote (the README's example)."""

from __future__ import annotations

from datetime import date

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Inputs
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
        "(tier 1) (marginal; attainment 0% -> 24%) = 4,800.00 USD."
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
        "earned in 2026-Q3 x paid share 1 x full extent 1 = -4,800.00 USD."
    )
