"""`recalc.repository.load_inputs` reads the deal changes on the driver connection under
the SQLAlchemy one: inside the caller's transaction (its own uncommitted writes, its
snapshot), and its fields decoded exactly, with or without the shared inputs given."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.deals.history import StageNames
from services.comp_engine.recalc import repository
from shared.db import create_engine

pytestmark = pytest.mark.integration

NAMES = StageNames.of(["won"], ["lost"])
BIG = 123456789012345678901234567890


async def _change(conn: AsyncConnection, rep: str, deal: str, event_id: str) -> None:
    fields = {"amount": "1000", "currency": "USD", "owner_id": rep, "status": "won"}
    fields["properties"] = {"crm_id": BIG}  # type: ignore[assignment]
    await conn.execute(
        text(
            "INSERT INTO comp.deal_changes (source, event_id, deal_id, event_type, event_time,"
            " sequence, fields) VALUES ('t', :e, :d, 'com.salesops.deal.updated.v1', :at, 0,"
            " CAST(:f AS jsonb))"
        ),
        {"e": event_id, "d": deal, "at": datetime(2026, 3, 1, tzinfo=UTC), "f": json.dumps(fields)},
    )
    await conn.execute(
        text("INSERT INTO comp.deal_reps (deal_id, rep_id) VALUES (:d, :r) ON CONFLICT DO NOTHING"),
        {"d": deal, "r": rep},
    )


async def test_reads_its_transactions_own_writes_exactly(database_url: str) -> None:
    rep = f"load{uuid.uuid4().hex[:6]}"
    engine = create_engine(database_url, application_name="test-load-inputs")
    try:
        async with engine.connect() as conn:
            shared = await repository.load_shared(conn)
        async with engine.connect() as conn, conn.begin() as transaction:
            await _change(conn, rep, f"{rep}-d", f"{rep}-e")
            for given in (None, shared):
                histories, _ = await repository.load_inputs(
                    conn, rep_ids=[rep], names=NAMES, shared=given
                )
                [state] = histories[f"{rep}-d"]
                assert (state.amount, state.status, state.owner_id) == (Decimal(1000), "won", rep)
                assert state.properties == {"crm_id": BIG}
                assert isinstance(state.properties["crm_id"], int)
            await transaction.rollback()
    finally:
        await engine.dispose()


async def test_reads_from_its_transactions_snapshot(database_url: str) -> None:
    rep = f"load{uuid.uuid4().hex[:6]}"
    engine = create_engine(database_url, application_name="test-load-inputs")
    try:
        async with engine.connect() as conn:
            shared = await repository.load_shared(conn)
        async with engine.begin() as conn:
            await _change(conn, rep, f"{rep}-d1", f"{rep}-e1")
        reader = await (await engine.connect()).execution_options(isolation_level="REPEATABLE READ")
        try:
            async with reader.begin():
                before, _ = await repository.load_inputs(
                    reader, rep_ids=[rep], names=NAMES, shared=shared
                )
                async with engine.begin() as writer:
                    await _change(writer, rep, f"{rep}-d2", f"{rep}-e2")
                after, _ = await repository.load_inputs(
                    reader, rep_ids=[rep], names=NAMES, shared=shared
                )
            assert set(before) == set(after) == {f"{rep}-d1"}
        finally:
            await reader.close()
    finally:
        await engine.dispose()
