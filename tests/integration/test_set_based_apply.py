"""The set-based apply against the real database: whatever the batches (shuffled, with
redeliveries and late changes), each deal's stored versions and current row are exactly what
`build_versions` makes of all its changes at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.forecast_worker.deals.handler import apply_deal_changes
from services.forecast_worker.deals.projection import (
    DEAL_CREATED,
    DEAL_DELETED,
    DEAL_UPDATED,
    Change,
    StageRules,
    Version,
    build_versions,
)
from shared.db import create_engine
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.support.deal_rows import deal_row

pytestmark = pytest.mark.integration

RULES = StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
_JSON_COLUMNS = ("properties", "splits")

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "amount": st.sampled_from(["1000", "2500.50", "0.01", "99999.99"]),
    "stage": st.sampled_from(["Discovery", "Proposal", "Closed Won", "Closed Lost"]),
    "close_date": st.sampled_from(["2026-03-31", "2026-06-30", None]),
    "owner_id": st.sampled_from(["rep-1", "rep-2"]),
    "forecast_category": st.sampled_from(["pipeline", "commit", None]),
    "properties": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    # The rows reach PostgreSQL as JSON text: escapes, nested lists and offsets must survive.
    "name": st.sampled_from(['Ünïcode "quoted" \\ deal', "plain", None]),
    "created_at": st.sampled_from(["2026-01-02T03:04:05.123456Z", "2025-12-31T23:00:00Z"]),
    "splits": st.sampled_from(
        [[{"rep_id": "rep-1", "percent": "60.5", "role": "owner"}], [], None]
    ),
}

change_specs = st.tuples(
    st.integers(0, 3),  # deal
    st.sampled_from([DEAL_CREATED, DEAL_UPDATED, DEAL_UPDATED, DEAL_DELETED]),
    st.integers(0, 40),  # minute: repeats make exact-time ties
    st.sampled_from([None, 1, 2, 10**30]),  # sequence: past 64 bits too
    st.dictionaries(st.sampled_from(sorted(FIELD_VALUES)), st.none(), min_size=1, max_size=3),
)


def _changes(data: st.DataObject, run: str) -> list[Change]:
    specs = data.draw(st.lists(change_specs, min_size=1, max_size=30))
    out = []
    for n, (deal, event_type, minute, sequence, names) in enumerate(specs):
        fields = {name: data.draw(FIELD_VALUES[name]) for name in names}
        if event_type == DEAL_DELETED:
            fields = {}
        out.append(
            Change(
                key=OrderKey.of(
                    time=T0 + timedelta(minutes=minute),
                    sequence=sequence,
                    source="test://set-apply",
                    event_id=f"{run}-e{n}",
                ),
                deal_id=f"{run}-d{deal}",
                event_type=event_type,
                fields=fields,
            )
        )
    return out


def _expected(version: Version) -> dict[str, Any]:
    row = {**deal_row(version), "valid_to": version.valid_to}
    for name in _JSON_COLUMNS:
        row[name] = orjson.loads(row[name]) if row[name] is not None else None
    return row


async def _apply_and_read(
    url: str, batches: list[list[Change]], deal_ids: set[str]
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    engine = create_engine(url, application_name="test-set-apply", pool_size=1)
    try:
        new = 0
        for batch in batches:
            async with engine.begin() as conn:
                new += await apply_deal_changes(conn, changes=batch, rules=RULES)
        async with engine.connect() as conn:
            ids = {"ids": sorted(deal_ids)}
            versions = await conn.execute(
                text(
                    "SELECT * FROM forecast.deal_versions WHERE deal_id = ANY(:ids) "
                    "ORDER BY deal_id, version"
                ),
                ids,
            )
            current = await conn.execute(
                text("SELECT * FROM forecast.deals WHERE deal_id = ANY(:ids) ORDER BY deal_id"),
                ids,
            )
            return new, [dict(r._mapping) for r in versions], [dict(r._mapping) for r in current]
    finally:
        await engine.dispose()


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_batches_in_any_order_give_the_versions_build_versions_gives(
    quiet_database_url: str, data: st.DataObject
) -> None:
    run = uuid.uuid4().hex[:10]
    changes = _changes(data, run)
    redelivered = data.draw(st.lists(st.sampled_from(changes), max_size=5))
    delivered = data.draw(st.permutations([*changes, *redelivered]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivered)), max_size=3)))
    bounds = [0, *cuts, len(delivered)]
    batches = [delivered[a:b] for a, b in pairwise(bounds) if b > a]
    by_deal: dict[str, list[Change]] = {}
    for change in changes:
        by_deal.setdefault(change.deal_id, []).append(change)

    new, versions, current = asyncio.run(_apply_and_read(quiet_database_url, batches, set(by_deal)))

    expected = [
        _expected(v) for deal_id in sorted(by_deal) for v in build_versions(by_deal[deal_id], RULES)
    ]
    assert new == len(changes)
    assert [{k: row[k] for k in expected[0]} for row in versions] == expected
    latest = [row for row in expected if row["valid_to"] is None]
    columns = [k for k in latest[0] if k != "valid_to"]
    assert [{k: row[k] for k in columns} for row in current] == [
        {k: row[k] for k in columns} for row in latest
    ]
