"""The plans-as-they-are side of a stored simulation read from the ledger
(`simulate/posted.py`) on the real database: only reps with a computed day and no dirty
mark, admins' adjustments and keys that net to zero left out, sums per period and
currency; and the day a recalculation records, which a failed one takes back."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import recalculator
from services.comp_engine.recalc.recalculator import Recalculator
from services.comp_engine.simulate import posted
from shared.db import create_engine

pytestmark = pytest.mark.integration

LINE = text(
    "INSERT INTO comp.ledger_lines (rep_id, period, posted_period, kind, rule, deal_id, "
    "booking, role, amount, currency, trace, cause) VALUES (:rep, :period, :period, "
    "'commission', 'c', :deal, 1, 'owner', :amount, :currency, '{}', :cause)"
)
COMPUTED = text("INSERT INTO comp.computed_reps (rep_id, computed_for) VALUES (:rep, :day)")
DIRTY = text("INSERT INTO comp.dirty_reps (rep_id) VALUES (:rep)")


async def test_only_current_reps_are_read(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    current, dirty, never = f"cur-{tag}", f"dirty-{tag}", f"never-{tag}"
    day = date(2027, 1, 1)
    lines = [
        (current, "2026-Q2", "d1", "100.00", "USD", "recalculation"),
        (current, "2026-Q3", "d2", "50.00", "USD", "recalculation"),
        (current, "2026-Q3", "d2", "-50.00", "USD", "recalculation"),
        (current, "2026-Q2", "", "7.00", "USD", "admin"),
        (current, "2025-Q4", "d3", "10.00", "EUR", "recalculation"),
        (dirty, "2026-Q2", "d4", "30.00", "USD", "recalculation"),
        (never, "2026-Q2", "d5", "40.00", "USD", "recalculation"),
    ]
    engine = create_engine(database_url, application_name="salesops-comp-test")
    try:
        async with engine.begin() as conn:
            for rep, period, deal, amount, currency, cause in lines:
                await conn.execute(
                    LINE,
                    {
                        "rep": rep,
                        "period": period,
                        "deal": deal,
                        "amount": Decimal(amount),
                        "currency": currency,
                        "cause": cause,
                    },
                )
            for rep in (current, dirty):
                await conn.execute(COMPUTED, {"rep": rep, "day": day})
            await conn.execute(DIRTY, {"rep": dirty})
        async with engine.connect() as conn:
            found = await posted.read(conn, rep_ids=[current, dirty, never])
    finally:
        await engine.dispose()
    assert found.computed_for == {current: day}
    assert found.sums[current] == {
        ("2026-Q2", "USD"): Decimal("100.00"),
        ("2025-Q4", "EUR"): Decimal("10.00"),
    }
    assert found.totals([current], date(2026, 1, 1), date(2027, 1, 1)) == {
        (current, "USD"): Decimal("100.00")
    }


async def test_a_recalculation_records_its_day_and_a_failed_one_drops_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posting records the day computed for; when a rep's recalculation fails, its ledger
    no longer follows its inputs (the mark is cleared and the rep waits), so its day goes."""
    tag = uuid.uuid4().hex[:8]
    rep = f"rep-{tag}"
    engine = create_engine(database_url, application_name="salesops-comp-test")
    recalc = Recalculator(engine, names=StageNames.of(["won"], ["lost"]))
    day = date(2027, 1, 1)
    try:
        async with engine.begin() as conn:
            await recalc.recalculate_reps(conn, [rep], today=day)
        assert await _computed(engine, rep) == day

        def fails(*args: object, **kwargs: object) -> None:
            raise RuntimeError("data no plan foresaw")

        monkeypatch.setattr(recalculator, "recalculate", fails)
        async with engine.begin() as conn:
            await recalc.recalculate_reps(conn, [rep], today=date(2027, 1, 2))
        assert await _computed(engine, rep) is None
        async with engine.connect() as conn:
            reason = (
                await conn.execute(
                    text("SELECT reason FROM comp.waiting WHERE rep_id = :rep"), {"rep": rep}
                )
            ).scalar_one()
        assert "data no plan foresaw" in reason
    finally:
        await engine.dispose()


async def _computed(engine: AsyncEngine, rep: str) -> date | None:
    async with engine.connect() as conn:
        found: date | None = (
            await conn.execute(
                text("SELECT computed_for FROM comp.computed_reps WHERE rep_id = :rep"),
                {"rep": rep},
            )
        ).scalar_one_or_none()
    return found
