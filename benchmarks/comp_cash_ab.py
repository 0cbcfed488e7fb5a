"""A/B of `engine.compute` with and without the pay-on-cash and payout-cap passes (issue 9).

100 reps, 20,000 won deals over 2027 on a monthly plan with a clawback window, computed
from scratch three times; prints the best time and its ratio to a ceiling measured in the
same run: the same deals through the bookings, credits and walk only (the steps every
recompute pays whatever its timing), so the ratio says what the line passes add.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/comp_cash_ab.py [on_booking|on_cash]

`on_cash` adds one `invoice.paid` per deal 20 days after the win and a payout cap, so each
deal also gets a deferral and a release line and most months a cap excess and carry.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.comp_engine.calc.bookings import bookings
from services.comp_engine.calc.credits import Crediting
from services.comp_engine.calc.engine import compute
from services.comp_engine.calc.inputs import Inputs, Payment
from tests.support.comp import assign, flat_component, plan, state

REPS = [f"r{i}" for i in range(100)]
DEALS = 20_000
TODAY = date(2028, 1, 1)


def inputs_for(mode: str) -> Inputs:
    on_cash = {"timing": "on_cash", "max_payable_per_period": "5000"}
    version = plan(
        period="month",
        components=[flat_component("10")],
        clawback={"window_days": 90, "triggers": ["lost"]},
        payment=on_cash if mode == "on_cash" else {"timing": "on_booking"},
    )
    payments = []
    if mode == "on_cash":
        first = datetime(2027, 1, 1, tzinfo=UTC)
        payments = [
            Payment(f"d{n}", f"i{n}", first + timedelta(days=n % 360 + 20), Decimal(500), "USD")
            for n in range(DEALS)
        ]
    return Inputs(
        plans={"p": [version]},
        assignments=[assign(r, start=date(2027, 1, 1)) for r in REPS],
        payments=payments,
    )


def best(run: Callable[[], object], times: int = 3) -> float:
    found = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        found.append(time.perf_counter() - start)
    return min(found)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "on_booking"
    histories = {
        f"d{n}": [
            state(
                date(2027, 1, 1) + timedelta(days=n % 360),
                "won",
                str(1000 + n % 977),
                owner=REPS[n % 100],
                event_id=f"e{n}",
            )
        ]
        for n in range(DEALS)
    }
    inputs = inputs_for(mode)
    policy = inputs.plans["p"][0].document.clawback

    def ceiling() -> None:
        crediting = Crediting(inputs)
        for deal_id, history in histories.items():
            crediting.credits(bookings(deal_id, history, policy))

    lines = len(compute(histories, inputs, today=TODAY).lines)
    floor = best(ceiling)
    full = best(lambda: compute(histories, inputs, today=TODAY))
    ratio = full / floor
    print(f"{mode}: {lines} lines, compute {full:.2f} s, ceiling {floor:.2f} s, ratio {ratio:.1f}")


if __name__ == "__main__":
    main()
