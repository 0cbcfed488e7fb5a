"""The waterfall summed in SQL (`totals.py`) against its definition (`flow.py` through
`books.rows`): generated histories written straight into the versions table of the real
database, every row and bucket compared to the digit, including the decimal scale the API
prints; and the deals endpoint (still classified in Python) listing exactly what the
summary counts."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.datasets.generator import HistoryParams, OrgParams, synthetic_org
from services.forecast_worker.models import DealVersion
from services.forecast_worker.waterfall import books, repository, totals
from services.forecast_worker.waterfall.flow import Bucket, Waterfall, Window
from services.forecast_worker.waterfall.repository import GroupBy
from shared.db import create_engine, create_sessionmaker
from tests.integration.test_forecast_waterfall import post, tagged
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

BASE = datetime(2071, 1, 1, tzinfo=UTC)
"""Far from every other test's deals: the generated histories are alone in their periods."""
WINDOWS = (
    Window(date(2071, 4, 1), date(2071, 7, 1)),
    Window(date(2071, 5, 1), date(2071, 6, 1)),
)
AMOUNTS = (None, "0", "0.00", "40", "100", "100.50", "250.5", "99.999", "1000", "1000.00")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, application_name="waterfall-totals-test")
    yield engine
    await engine.dispose()


def _state(rng: random.Random) -> dict[str, Any]:
    close = None if rng.random() < 0.1 else date(2071, 2, 1) + timedelta(rng.randrange(240))
    amount = rng.choice(AMOUNTS)
    return {
        "status": rng.choices(("open", "won", "lost"), (6, 2, 2))[0],
        "close_date": close,
        "amount": None if amount is None else Decimal(amount),
        "currency": rng.choices(("EUR", "USD", None), (16, 3, 1))[0],
        "owner_id": rng.choice(("r1", "r2", "r3", None)),
        "deleted": rng.random() < 0.05,
    }


def _history(rng: random.Random, deal_id: str) -> list[dict[str, Any]]:
    """1 to 5 versions at whole days or noons (so some start exactly at an instant asked),
    each replacing the one before; the last stays valid."""
    starts = sorted(rng.sample(range(0, 480), rng.randint(1, 5)))
    times = [BASE + timedelta(hours=12 * s) for s in starts]
    return [
        {
            **_state(rng),
            "deal_id": deal_id,
            "version": n + 1,
            "valid_from": at,
            "valid_to": times[n + 1] if n + 1 < len(times) else None,
            "properties": {},
            "sequence": n,
            "event_source": "waterfall-totals-test",
            "event_id": f"{deal_id}:{n}",
        }
        for n, at in enumerate(times)
    ]


def _printed(table: dict[books.Key, Waterfall]) -> dict[books.Key, dict[str, str]]:
    """Each row as the API prints it: equal Decimals of another scale differ here."""
    return {
        key: {"start": format(w.start, "f")}
        | {b.value: format(a, "f") for b, a in w.buckets.items()}
        for key, w in table.items()
    }


async def _both(
    session: AsyncSession, window: Window, at_from: datetime, at_to: datetime, by: GroupBy | None
) -> tuple[dict[books.Key, Waterfall], dict[books.Key, Waterfall]]:
    found = await repository.candidates(
        session, start=window.start, end=window.end, at_from=at_from, at_to=at_to, group_by=by
    )
    return books.rows(found, window), await totals.rows(session, window, (at_from, at_to), by)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_sql_totals_equal_flow_on_generated_histories(engine: AsyncEngine, seed: int) -> None:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    versions = [v for n in range(400) for v in _history(rng, f"wt-{tag}-{n:03d}")]
    used: Counter[str] = Counter()
    async with create_sessionmaker(engine)() as session:
        try:
            await session.execute(insert(DealVersion), versions)
            for _ in range(8):
                first, second = sorted(rng.choices(range(0, 480), k=2))
                at_from, at_to = (BASE + timedelta(hours=12 * s) for s in (first, second))
                for window in WINDOWS:
                    for by in (None, "rep"):
                        expected, summed = await _both(session, window, at_from, at_to, by)
                        assert _printed(summed) == _printed(expected), (window, at_from, at_to, by)
                        used.update(b for w in expected.values() for b, a in w.buckets.items() if a)
                        used.update("start" for w in expected.values() if w.start)
        finally:
            await session.rollback()
    assert set(used) == {"start", *(b.value for b in Bucket)}, "every bucket was compared"


async def _listed(client: httpx.AsyncClient, params: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_params = {**params, "limit": "25", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/forecast/waterfall/deals", params=page_params)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


async def test_bucket_deals_list_what_the_summary_counts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    tag = uuid.uuid4().hex[:8]
    busy = HistoryParams(reassign_probability=0.2)
    org = OrgParams(start=date(2018, 1, 1), end=date(2019, 1, 1), history=busy)
    events = [tagged(e, tag) for e in synthetic_org(seed=8, reps=12, deals=50, params=org)]
    await post(client, events)
    deal_events = sum(1 for e in events if "deal_id" in e["data"])
    versions = select(func.count()).where(DealVersion.deal_id.startswith(f"{tag}-"))

    async def applied() -> bool:
        async with engine.connect() as conn:
            return await conn.scalar(versions) == deal_events

    await eventually(applied, within=120)
    listed_any: set[str] = set()
    for period, first, second in (
        ("2018-Q2", "2018-02-01", "2018-05-15"),
        ("2018-Q3", "2018-06-15", "2018-08-31"),
        ("2018-Q4", "2018-09-01", "2018-11-15"),
        ("2018-11", "2018-10-01", "2018-11-20"),
        ("2018-12", "2018-11-01", "2018-12-15"),
        ("FY2018", "2017-12-01", "2018-12-31"),
        ("FY2018", "2018-06-01", "2018-10-01"),
    ):
        query = {"period": period, "from": f"{first}T12:00:00Z", "to": f"{second}T12:00:00Z"}
        for group_by in (None, "rep", "team"):
            extra = {"group_by": group_by} if group_by else {}
            r = await client.get("/v1/forecast/waterfall", params={**query, **extra})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            for bucket in Bucket:
                deals = await _listed(client, {**query, **extra, "bucket": bucket.value})
                listed: dict[tuple[str | None, str | None], Decimal] = defaultdict(Decimal)
                for d in deals:
                    listed[(d["group"], d["currency"])] += Decimal(d["amount"])
                counted = {
                    (x["group"], x["currency"]): Decimal(x[bucket.value])
                    for x in rows
                    if Decimal(x[bucket.value])
                }
                assert {k: a for k, a in listed.items() if a} == counted, (query, group_by, bucket)
                listed_any |= {bucket.value} if deals else set()
    assert listed_any == {b.value for b in Bucket}, "every bucket listed some deals"
