"""The recalculation wakes on the commit that marked a rep, not on its poll, and a mark
that lands while its rep is being recalculated is neither waited for nor lost.

Each test runs against a database of its own module (migrated here), so no other
recalculation (the session stack's) can post the lines for it: with the poll set to 30 s,
a line that shows within a few seconds was posted because of the notification. Deals go
in through `intake.handler.apply_deals`, the consumer's own handler, in a transaction as
the consumer runs it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cli import run_migrations
from services.comp_engine.deals.history import StageNames
from services.comp_engine.intake import handler
from services.comp_engine.intake.repository import RECALC_CHANNEL, mark_dirty
from services.comp_engine.recalc.recalculator import Recalculator
from services.comp_engine.recalc.wakeup import Wakeup, asyncpg_dsn
from shared.db import create_engine
from shared.events import validate_event
from tests.support import infra
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

NAMES = StageNames.of(["closedwon"], ["closedlost"])
PLAN = {
    "name": "flat",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "10000",
    "components": [
        {"id": "c", "rate_table": {"basis": "deal_amount", "tiers": [{"from": "0", "rate": "10"}]}}
    ],
}
LONG_POLL = 30.0


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    with infra.test_database() as url:
        run_migrations(url)
        yield url


@pytest.fixture
async def engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(own_database, application_name="salesops-comp-wakeup-test")
    try:
        yield engine
    finally:
        await engine.dispose()


async def assigned_rep(engine: AsyncEngine) -> str:
    """A new rep on a flat 10% plan."""
    tag = uuid.uuid4().hex[:8]
    rep, plan_id = f"rep-{tag}", f"plan-{tag}"
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO comp.plan_versions (plan_id, version, effective_from, document, "
                "created_by) VALUES (:p, 1, '2026-01-01', CAST(:d AS jsonb), 'test')"
            ),
            {"p": plan_id, "d": json.dumps(PLAN)},
        )
        await conn.execute(
            text(
                "INSERT INTO comp.assignments (rep_id, plan_id, start, created_by) "
                "VALUES (:r, :p, '2026-01-01', 'test')"
            ),
            {"r": rep, "p": plan_id},
        )
    return rep


async def win(engine: AsyncEngine, rep: str, amount: str) -> str:
    """A won deal of `rep` through the consumer's handler, committed; its id."""
    deal = f"d-{uuid.uuid4().hex[:8]}"
    raw = event(
        CREATED,
        {
            "deal_id": deal,
            "owner_id": rep,
            "amount": amount,
            "currency": "USD",
            "stage": "closedwon",
            "close_date": "2026-02-10",
        },
        time="2026-02-10T12:00:00Z",
    )
    async with engine.begin() as conn:
        await handler.apply_deals(conn, [validate_event(raw, stored=True)], names=NAMES)
    return deal


async def ledger(engine: AsyncEngine, rep: str) -> list[tuple[str, Decimal]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT deal_id, amount FROM comp.ledger_lines WHERE rep_id = :r ORDER BY id"),
            {"r": rep},
        )
        return [(r.deal_id, r.amount) for r in rows]


async def dirty(engine: AsyncEngine, rep: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM comp.dirty_reps WHERE rep_id = :r"), {"r": rep}
        )
    return bool(found)


def today() -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC)


async def test_won_deal_is_posted_on_the_notification_not_the_poll(engine: AsyncEngine) -> None:
    rep = await assigned_rep(engine)
    wakeup = Wakeup(asyncpg_dsn(engine.url), RECALC_CHANNEL)
    recalculator = Recalculator(
        engine, names=NAMES, poll_seconds=LONG_POLL, wakeup=wakeup, clock=today
    )
    task = asyncio.create_task(recalculator.run())
    try:
        await asyncio.wait_for(wakeup.listening.wait(), 10)
        await asyncio.sleep(0.5)  # the round the LISTEN itself triggers is over: idle now
        for amount in ("40000", "20000"):
            started = time.monotonic()
            deal = await win(engine, rep, amount)

            async def posted(deal: str = deal) -> list[tuple[str, Decimal]] | None:
                found = await ledger(engine, rep)
                return found if any(d == deal for d, _ in found) else None

            found = await eventually(posted, within=10, interval=0.05)
            assert time.monotonic() - started < 5, "posted by the poll, not the notification"
            assert dict(found)[deal] == Decimal(amount) / 10
        assert not await dirty(engine, rep)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_lost_listen_connection_is_reopened(engine: AsyncEngine) -> None:
    """The server drops the listening connection: the wake-up reconnects by itself and
    the next won deal is still posted long before the poll."""
    rep = await assigned_rep(engine)
    wakeup = Wakeup(asyncpg_dsn(engine.url), RECALC_CHANNEL, retry_seconds=0.2)
    recalculator = Recalculator(
        engine, names=NAMES, poll_seconds=LONG_POLL, wakeup=wakeup, clock=today
    )
    task = asyncio.create_task(recalculator.run())
    try:
        await asyncio.wait_for(wakeup.listening.wait(), 10)
        async with engine.begin() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "application_name = 'salesops-comp-recalc-wakeup' AND datname = "
                    "current_database()"
                )
            )
        assert killed == 1
        await eventually(lambda: _not(wakeup.listening.is_set()), within=5, interval=0.02)
        await asyncio.wait_for(wakeup.listening.wait(), 10)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        deal = await win(engine, rep, "30000")

        async def posted() -> bool:
            return any(d == deal for d, _ in await ledger(engine, rep))

        await eventually(posted, within=10, interval=0.05)
        assert time.monotonic() - started < 5
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _not(value: bool) -> bool:
    return not value


class MarkingMidRound(Recalculator):
    """Marks the rep again from another transaction while recalculating it: committed
    before the round ends (`hold` False), or still open when the round clears (`hold`)."""

    def __init__(self, engine: AsyncEngine, *, hold: bool) -> None:
        super().__init__(engine, names=NAMES, clock=today)
        self.hold = hold
        self.marker: AsyncConnection | None = None
        self.mark_seconds: float | None = None

    async def recalculate_reps(
        self, conn: AsyncConnection, rep_ids: list[str], *, today: date
    ) -> int:
        count = await super().recalculate_reps(conn, rep_ids, today=today)
        (rep_id,) = rep_ids
        marker = await self._engine.connect()
        await marker.begin()
        started = time.monotonic()
        # Bounded: under a round that row-locked its claims this would wait for the round.
        await asyncio.wait_for(mark_dirty(marker, rep_ids={rep_id}), 5)
        self.mark_seconds = time.monotonic() - started
        if self.hold:
            self.marker = marker
        else:
            await marker.commit()
            await marker.close()
        return count


@pytest.mark.parametrize("hold", [False, True], ids=["committed", "in-flight"])
async def test_mark_during_a_round_neither_waits_nor_is_lost(
    engine: AsyncEngine, hold: bool
) -> None:
    rep = await assigned_rep(engine)
    deal = await win(engine, rep, "10000")
    recalculator = MarkingMidRound(engine, hold=hold)
    # The round ends (its clear skips a row being marked) while the mark may be open.
    assert await asyncio.wait_for(recalculator.round(), 10) == 1
    assert recalculator.mark_seconds is not None
    assert recalculator.mark_seconds < 1
    assert await ledger(engine, rep) == [(deal, Decimal("1000.00"))]
    if recalculator.marker is not None:
        await recalculator.marker.commit()
        await recalculator.marker.close()
    assert await dirty(engine, rep), "the mark made during the round was cleared by it"

    plain = Recalculator(engine, names=NAMES, clock=today)
    assert await plain.round() >= 1
    assert not await dirty(engine, rep)
    assert await ledger(engine, rep) == [(deal, Decimal("1000.00"))], "redone, nothing added"


async def test_rounds_take_the_oldest_marks_in_chunks_sized_by_time(engine: AsyncEngine) -> None:
    """The first round does one rep, the oldest marked; a round that took less than
    `round_seconds` lets the next take more, one that took longer fewer; reps not claimed
    stay dirty and are done by later rounds."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM comp.dirty_reps"))
    reps = [await assigned_rep(engine) for _ in range(4)]
    for rep in reps:
        await win(engine, rep, "10000")
    # Two readings a round (start, end): the rounds take 1 s, 4 s, then 1 s.
    readings = iter([0.0, 1.0, 10.0, 14.0, 20.0, 21.0])
    recalculator = Recalculator(
        engine, names=NAMES, clock=today, round_seconds=1.5, timer=lambda: next(readings)
    )
    assert await recalculator.round() == 1  # took 1 s of 1.5: next ceil(1.5) = 2
    assert [await dirty(engine, rep) for rep in reps] == [False, True, True, True]
    assert await recalculator.round() == 2  # took 4 s of 1.5: next ceil(0.75) = 1
    assert [await dirty(engine, rep) for rep in reps] == [False, False, False, True]
    assert await recalculator.round() == 1
    assert await recalculator.round() == 0
    for rep in reps:
        assert await ledger(engine, rep)


async def test_only_deals_ever_won_mark_their_reps(engine: AsyncEngine) -> None:
    """Changes to a deal never won mark nobody (they have no booking); its first win marks
    its reps, the rep it named while open included, and so does any change after."""
    earlier, rep = await assigned_rep(engine), await assigned_rep(engine)
    deal = f"d-{uuid.uuid4().hex[:8]}"

    async def apply(type_: str, data: dict[str, object], minute: int) -> None:
        raw = event(type_, {"deal_id": deal, **data}, time=f"2026-02-10T12:{minute:02d}:00Z")
        async with engine.begin() as conn:
            await handler.apply_deals(conn, [validate_event(raw, stored=True)], names=NAMES)

    async def marked() -> set[str]:
        async with engine.begin() as conn:
            found = await conn.execute(
                text("DELETE FROM comp.dirty_reps WHERE rep_id IN (:a, :b) RETURNING rep_id"),
                {"a": earlier, "b": rep},
            )
            return set(found.scalars())

    opened = {"owner_id": earlier, "amount": "5000", "currency": "USD", "stage": "qualified"}
    await apply(CREATED, {**opened, "close_date": "2026-02-20"}, 1)
    await apply(UPDATED, {"amount": "6000", "owner_id": rep}, 2)
    assert await marked() == set()
    await apply(UPDATED, {"stage": "ClosedWon"}, 3)
    assert await marked() == {earlier, rep}
    await apply(UPDATED, {"stage": "qualified"}, 4)
    assert await marked() == {earlier, rep}
    await apply(UPDATED, {"amount": "7000"}, 5)
    assert await marked() == {earlier, rep}, "a deal once won marks on any change"
