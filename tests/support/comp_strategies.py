"""Hypothesis strategies and inputs shared by the commission property tests: generated
plans over three reps, `invoice.paid` events for their deals, and the ledger's totals per
line key, which is what "the ledger equals a computation from scratch" compares."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from hypothesis import strategies as st

from services.comp_engine.calc.inputs import FxRate, FxTable, Inputs, Payment, PlanVersion
from services.comp_engine.calc.lines import LineKey
from tests.support.comp import assign, plan

REPS = ("r1", "r2", "r3")
TODAY = date(2028, 1, 15)
START = date(2027, 1, 1)
FX = FxTable([FxRate("EUR", "USD", START, Decimal("1.1"))])

amounts = st.integers(min_value=0, max_value=200_000).map(lambda n: str(Decimal(n) / 4))
rates_ = st.sampled_from(["0", "2.5", "5", "7.25", "10", "12"])


@st.composite
def plans(
    draw: st.DrawFn,
    *,
    min_tier_bounds: int = 0,
    with_clawback: bool = False,
    with_split_roles: bool = False,
) -> PlanVersion:
    """Any plan; the keywords force a mechanism in (more tiers, a clawback, credit rules for
    the splits' roles) for a test whose inputs would otherwise rarely reach it."""
    basis = draw(st.sampled_from(["attainment", "period_amount", "deal_amount"]))
    mode = draw(st.sampled_from(["marginal", "retroactive", "interpolated"]))
    bounds = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=150), min_size=min_tier_bounds, max_size=3))
    )
    scale = 1 if basis == "attainment" else 1000
    starts = [0, *(b * scale for b in bounds)]
    rows = []
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        rows.append({"from": str(s), "to": None if end is None else str(end), "rate": draw(rates_)})
    component: dict[str, Any] = {
        "id": "c",
        "rate_table": {
            "basis": basis,
            "mode": mode,
            "tiers": rows,
            "boundary": draw(st.sampled_from(["upper", "lower"])),
        },
    }
    if basis != "deal_amount":
        if draw(st.booleans()):
            component["accelerators"] = [{"threshold": str(100 * scale), "multiplier": "1.5"}]
        if draw(st.booleans()):
            component["decelerator"] = {"threshold": str(50 * scale), "multiplier": "0.5"}
    if draw(st.booleans()):
        component["cap_per_deal"] = draw(amounts)
    if draw(st.booleans()):
        component["cap_per_period"] = draw(amounts)
    if draw(st.booleans()):
        component["minimum_per_period"] = draw(amounts)
    if draw(st.booleans()):
        component["payment_timing"] = draw(st.sampled_from(["on_booking", "on_cash"]))
    document: dict[str, Any] = {
        "period": draw(st.sampled_from(["month", "quarter"])),
        "quota": str(draw(st.integers(min_value=1, max_value=500)) * 1000),
        "target_variable": draw(amounts),
        "components": [component],
    }
    if with_clawback or draw(st.booleans()):
        document["clawback"] = {
            "window_days": draw(st.integers(min_value=0, max_value=200)),
            "triggers": draw(
                st.lists(
                    st.sampled_from(["lost", "deleted", "cancelled", "amount_reduced"]),
                    min_size=1,
                    unique=True,
                )
            ),
            "base": draw(st.sampled_from(["paid", "original_rate"])),
            "extent": "prorated" if draw(st.booleans()) else "full",
            "reduces_attainment": draw(st.booleans()),
        }
    payment: dict[str, Any] = {"timing": draw(st.sampled_from(["on_booking", "on_cash"]))}
    if draw(st.booleans()):
        payment["max_payable_per_period"] = str(draw(st.integers(min_value=1, max_value=5000)))
    document["payment"] = payment
    if draw(st.booleans()):
        document["draw"] = {
            "kind": draw(st.sampled_from(["recoverable", "non_recoverable"])),
            "amount_per_period": draw(amounts),
            "recovery_start_period": 2,
        }
        if draw(st.booleans()):
            document["draw"]["max_recovery_per_period"] = draw(amounts)
        if draw(st.booleans()):
            document["draw"]["max_recovery_percent_of_earnings"] = draw(rates_)
    if draw(st.booleans()):
        document["bonuses"] = [{"id": "b", "at_attainment": "80", "amount": "500"}]
    if draw(st.booleans()):
        document["spiffs"] = [
            {"id": "s", "window_from": "2027-03-01", "window_to": "2027-06-30", "rate": "1"}
        ]
    if with_split_roles:
        shares = st.fixed_dictionaries({"quota": st.booleans(), "payout": st.booleans()})
        document["credit_rules"] = {
            "owner": draw(shares),
            "roles": {"revenue": draw(shares), "overlay": draw(shares)},
        }
    return plan(**document)


@st.composite
def payments(draw: st.DrawFn) -> list[Payment]:
    """`invoice.paid` events for deals d0..d7 (some for deals never won, some before the
    win, some over the deal's amount), in two currencies."""
    found = []
    for number in range(draw(st.integers(min_value=0, max_value=10))):
        day = START + timedelta(days=draw(st.integers(min_value=0, max_value=420)))
        found.append(
            Payment(
                deal_id=f"d{draw(st.integers(min_value=0, max_value=7))}",
                invoice_id=f"inv-{number}",
                paid_at=datetime.combine(day, time(9), tzinfo=UTC),
                amount=Decimal(draw(amounts)),
                currency=draw(st.sampled_from(["USD", "USD", "EUR"])),
            )
        )
    return found


def inputs_for(version: PlanVersion, paid: list[Payment] | None = None) -> Inputs:
    return Inputs(
        plans={"p": [version]},
        assignments=[assign(r, start=START) for r in REPS],
        payments=paid or [],
        fx=FX,
    )


class _Amounted(Protocol):
    @property
    def key(self) -> LineKey: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


def totals(lines: Iterable[_Amounted]) -> dict[tuple[LineKey, str], Decimal]:
    """What the lines add up to per key and currency, the keys adding up to zero left out:
    computed lines, or a ledger's postings, compare alike."""
    found: dict[tuple[LineKey, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        found[(line.key, line.currency)] += line.amount
    return {k: v for k, v in found.items() if v}
