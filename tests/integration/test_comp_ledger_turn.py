"""Writers of ledger lines take turns (`ledger/turn.py`): a second writer waits for the
first to commit, so line ids commit in order (a BI tool pulling by `after_id` skips
nothing), and a recalculation that computed before a close was approved posts after it,
into the first open period, never into the period that just closed."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.comp_engine.calc.lines import Kind, LineKey
from services.comp_engine.calc.posting import Posting
from services.comp_engine.deals.history import StageNames
from services.comp_engine.ledger import turn
from services.comp_engine.recalc import repository
from services.comp_engine.recalc.recalculator import recalculate
from services.comp_engine.statements import repository as statements
from shared.db import create_engine
from tests.support.comp import flat_component
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NAMES = StageNames.of(["won"], ["lost"])
WAITING_FOR_TURN = text(
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
)


def _posting(rep: str, deal: str) -> Posting:
    key = LineKey(rep, "2031-01", Kind.ADJUSTMENT, "turn-test", deal, 0, "")
    return Posting(key, Decimal("1.00"), "USD", "2031-01", {"test": deal})


async def _waiting_for_turn(engine: AsyncEngine, app: str) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(WAITING_FOR_TURN, {"app": app}))


async def test_a_second_writer_waits_so_line_ids_commit_in_order(
    quiet_database_url: str,
) -> None:
    database_url = quiet_database_url
    rep = f"turn-{uuid.uuid4().hex[:8]}"
    app = f"turn-second-{rep}"
    first_engine = create_engine(database_url, application_name=f"turn-first-{rep}")
    second_engine = create_engine(database_url, application_name=app)

    async def second_writer() -> int:
        async with second_engine.begin() as conn:
            return await repository.post(conn, postings=[_posting(rep, "b")], cause="test")

    try:
        async with first_engine.connect() as first:
            await first.begin()
            assert await repository.post(first, postings=[_posting(rep, "a")], cause="test") == 1
            second = asyncio.create_task(second_writer())
            await eventually(lambda: _waiting_for_turn(first_engine, app))
            assert not second.done()
            await first.commit()
        assert await second == 1
        async with first_engine.connect() as conn:
            by_id = await conn.execute(
                text("SELECT deal_id FROM comp.ledger_lines WHERE rep_id = :r ORDER BY id"),
                {"r": rep},
            )
            assert [row.deal_id for row in by_id] == ["a", "b"]
    finally:
        await first_engine.dispose()
        await second_engine.dispose()


async def _seed_won_deal(engine: AsyncEngine, rep: str) -> None:
    document = {
        "name": rep,
        "currency": "USD",
        "period": "month",
        "target_variable": "0",
        "components": [flat_component("10")],
    }
    won = {
        "amount": "5000",
        "currency": "USD",
        "owner_id": rep,
        "status": "won",
        "stage": "Won",
        "close_date": "2031-03-10",
    }
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO comp.plan_versions (plan_id, version, effective_from, document,"
                " created_by) VALUES (:p, 1, :d, CAST(:doc AS jsonb), 't')"
            ),
            {"p": rep, "d": date(2031, 1, 1), "doc": json.dumps(document)},
        )
        await conn.execute(
            text(
                "INSERT INTO comp.assignments (rep_id, plan_id, start, created_by)"
                " VALUES (:r, :r, :d, 't')"
            ),
            {"r": rep, "d": date(2031, 1, 1)},
        )
        await conn.execute(
            text(
                "INSERT INTO comp.deal_changes (source, event_id, deal_id, event_type,"
                " event_time, sequence, fields) VALUES ('t', :e, :d,"
                " 'com.salesops.deal.updated.v1', :at, 0, CAST(:f AS jsonb))"
            ),
            {
                "e": f"{rep}-won",
                "d": f"{rep}-deal",
                "at": datetime(2031, 3, 10, 12, tzinfo=UTC),
                "f": json.dumps(won),
            },
        )
        await conn.execute(
            text("INSERT INTO comp.deal_reps (deal_id, rep_id) VALUES (:d, :r)"),
            {"d": f"{rep}-deal", "r": rep},
        )


async def test_a_close_approved_while_a_recalculation_computed_is_not_posted_into(
    quiet_database_url: str,
) -> None:
    """The recalculation reads the closes (none) and computes, then waits for the turn a
    close holds; the close commits; the recalculation reads the closes again and posts
    the March commission into April, leaving March's frozen statement as it was. On a
    database of its own: the close is every rep's, and no stack's rounds take the rep."""
    database_url = quiet_database_url
    rep = f"turn-{uuid.uuid4().hex[:8]}"
    app = f"turn-recalc-{rep}"
    closer_engine = create_engine(database_url, application_name=f"turn-close-{rep}")
    recalc_engine = create_engine(database_url, application_name=app)

    async def recalculation() -> int:
        async with recalc_engine.begin() as conn:
            posted, _ = await recalculate(conn, rep_ids=[rep], names=NAMES, today=date(2031, 5, 1))
            return posted

    try:
        await _seed_won_deal(closer_engine, rep)
        async with closer_engine.connect() as closer:
            await closer.begin()
            await turn.take(closer)
            running = asyncio.create_task(recalculation())
            await eventually(lambda: _waiting_for_turn(closer_engine, app))
            session = AsyncSession(bind=closer)
            close = await statements.request_close(session, period="2031-03", author="first")
            assert await statements.approve_close(session, row=close, author="second") == 0
            await closer.commit()
        assert await running == 1
        async with closer_engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT period, posted_period, amount FROM comp.ledger_lines"
                        " WHERE rep_id = :r"
                    ),
                    {"r": rep},
                )
            ).all()
        assert [(r.period, r.posted_period, r.amount) for r in rows] == [
            ("2031-03", "2031-04", Decimal("500.00"))
        ]
    finally:
        await closer_engine.dispose()
        await recalc_engine.dispose()
