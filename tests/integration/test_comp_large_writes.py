"""Writes of more rows than one statement takes bind parameters (PostgreSQL's 32,767): a
rep's recalculation posting thousands of lines, a chunk waiting on thousands of deals, a
large consumer batch of deal changes, the 10,000 FX rates a body may hold. Each was one
multi-row VALUES statement, which failed the whole transaction past about 2,700 lines."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from services.comp_engine.calc.engine import Waiting
from services.comp_engine.calc.lines import Kind, LineKey
from services.comp_engine.calc.posting import Posting
from services.comp_engine.intake import repository as intake
from services.comp_engine.recalc import repository
from shared.db import create_engine

pytestmark = pytest.mark.integration


async def test_thousands_of_lines_and_waits_are_written(database_url: str) -> None:
    rep = f"rep-{uuid.uuid4().hex[:8]}"
    postings = [
        Posting(
            LineKey(rep, "2026-Q1", Kind.COMMISSION, "c", f"d{n:05d}", 1, "owner"),
            Decimal(n) / 100,
            "USD",
            "2026-Q1",
            {"n": n},
        )
        for n in range(1, 3_001)
    ]
    waits = [Waiting(rep, f"d{n:05d}", "no EUR rate") for n in range(20_000)]
    engine = create_engine(database_url, application_name="salesops-comp-test")
    try:
        async with engine.begin() as conn:
            assert await repository.post(conn, postings=postings, cause="recalculation") == 3_000
            await repository.replace_waiting(conn, rep_ids={rep}, waiting=waits)
        async with engine.begin() as conn:
            before: dict[str, int] = {
                r.subject: r.id for r in await conn.execute(_WAITS, {"rep": rep})
            }
            await repository.replace_waiting(conn, rep_ids={rep}, waiting=waits[:10_000])
        async with engine.connect() as conn:
            lines = (
                await conn.execute(
                    text(
                        "SELECT id, amount FROM comp.ledger_lines WHERE rep_id = :rep ORDER BY id"
                    ),
                    {"rep": rep},
                )
            ).all()
            after: dict[str, int] = {
                r.subject: r.id for r in await conn.execute(_WAITS, {"rep": rep})
            }
    finally:
        await engine.dispose()
    assert [line.amount for line in lines] == [p.amount for p in postings], (
        "appended in the postings' order"
    )
    assert len(before) == 20_000
    assert after == {w.subject: before[w.subject] for w in waits[:10_000]}, (
        "the waits that go on keep their ids; the others end"
    )


_WAITS = text("SELECT subject, id FROM comp.waiting WHERE rep_id = :rep")


async def test_a_large_batch_of_deal_changes_is_stored(database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "source": f"app://large-{tag}",
            "event_id": f"e{n}",
            "deal_id": f"deal-{tag}-{n}",
            "event_type": "com.salesops.deal.created.v1",
            "event_time": start + timedelta(seconds=n),
            "sequence": n,
            "fields": {"amount": str(n)},
        }
        for n in range(6_000)
    ]
    engine = create_engine(database_url, application_name="salesops-comp-test")
    try:
        async with engine.begin() as conn:
            fresh = await intake.insert_changes(conn, rows=rows)
            again = await intake.insert_changes(conn, rows=rows)
    finally:
        await engine.dispose()
    assert sorted(fresh) == sorted(str(r["deal_id"]) for r in rows)
    assert again == [], "a redelivery stores nothing"


async def test_a_body_of_ten_thousand_fx_rates_is_stored(client: httpx.AsyncClient) -> None:
    first = date(1970, 1, 1)
    rates = [
        {"base": "ISK", "quote": "NOK", "day": (first + timedelta(days=n)).isoformat(), "rate": "2"}
        for n in range(10_000)
    ]
    r = await client.put("/v1/comp/fx-rates", json={"rates": rates})
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {"rates": 10_000}
