"""The metrics totals PostgreSQL computes (`outcome_totals`, `stage_totals`,
`first_seen_stages`) give exactly the rows that `report.metrics_rows` computes in Python
from every closed deal and its stage path, on generated histories applied through the
worker's own set-based apply: repeated and unknown stages, versions without a stage
change, times to the microsecond, deals without a creation time, closes inside and
outside the range. Compared as the JSON the API answers, so a decimal's places count too."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.deals.handler import apply_deal_changes
from services.forecast_worker.deals.projection import DEAL_CREATED, DEAL_UPDATED, Change, StageRules
from services.forecast_worker.metrics import repository
from services.forecast_worker.metrics.report import (
    GroupTotals,
    metrics_rows,
    rows_from_totals,
    stage_order,
)
from services.forecast_worker.metrics.repository import GroupBy
from services.forecast_worker.metrics.schemas import MetricsRow
from shared.db import create_engine
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES

pytestmark = pytest.mark.integration

RULES = StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)
T0 = datetime(2090, 11, 1, tzinfo=UTC)
YEAR = date(2091, 1, 1)
START, END = date(2091, 2, 1), date(2091, 10, 31)
ORDER = ["Prospect", "Qualify", "Propose", "closed won"]
STAGES = [*ORDER, "Elsewhere", "closed lost"]

update_fields = st.fixed_dictionaries(
    {},
    optional={
        "stage": st.sampled_from(STAGES),
        "amount": st.sampled_from(["1000", "2500.50", "0.01", "99999.99"]),
        "close_date": st.integers(0, 364).map(lambda d: (YEAR + timedelta(days=d)).isoformat()),
        "owner_id": st.sampled_from(["rep-a", "rep-b", "rep-c"]),
    },
)
steps = st.tuples(st.integers(1, 40 * 86400), st.integers(0, 999_999), update_fields)


@st.composite
def history(draw: st.DrawFn, run: str, n: int) -> list[Change]:
    deal_id = f"{run}-d{n}"
    at = T0 + timedelta(seconds=draw(st.integers(0, 86400 * 60)))
    created: dict[str, Any] = {
        "stage": draw(st.sampled_from(STAGES[:3])),
        "amount": draw(st.sampled_from(["500", "1234.56"])),
        "currency": draw(st.sampled_from(["USD", "EUR"])),
        "owner_id": draw(st.sampled_from(["rep-a", "rep-b", "rep-c"])),
        "close_date": (YEAR + timedelta(days=draw(st.integers(0, 364)))).isoformat(),
    }
    if draw(st.booleans()) or n == 0:
        created["created_at"] = at.isoformat()
    changes = [(DEAL_CREATED, at, created)]
    for seconds, micros, fields in draw(st.lists(steps, max_size=8)):
        at += timedelta(seconds=seconds, microseconds=micros)
        changes.append((DEAL_UPDATED, at, fields))
    return [
        Change(
            key=OrderKey.of(
                time=t, sequence=None, source="test://metrics", event_id=f"{deal_id}-{i}"
            ),
            deal_id=deal_id,
            event_type=kind,
            fields=fields,
        )
        for i, (kind, t, fields) in enumerate(changes)
    ]


async def _both_ways(
    session: AsyncSession, group_by: GroupBy | None, order: list[str]
) -> tuple[list[MetricsRow], list[MetricsRow]]:
    span = {"start": START, "end": END}
    opened = await repository.open_counts(session, today=date.today(), group_by=group_by)
    created = await repository.created_pipeline(session, **span, group_by=group_by)
    closed = await repository.closed_deals(session, **span, group_by=group_by)
    paths = await repository.stage_paths(session, **span)
    reference = metrics_rows(closed, paths, stage_order(order, paths), opened, created)
    if not order:
        assert await repository.first_seen_stages(session, **span) == stage_order([], paths)
        order = stage_order([], paths)
    outcomes = await repository.outcome_totals(session, **span, group_by=group_by)
    stages = await repository.stage_totals(session, **span, group_by=group_by, order=order)
    totals = {key: GroupTotals(o, stages.get(key, {})) for key, o in outcomes.items()}
    return rows_from_totals(totals, order, opened, created), reference


async def _apply_and_compare(url: str, changes: list[Change]) -> None:
    engine = create_engine(url, application_name="test-metrics-totals", pool_size=1)
    try:
        async with engine.begin() as conn:
            await apply_deal_changes(conn, changes=changes, rules=RULES)
        async with AsyncSession(engine) as session:
            for group_by in (None, "rep", "team"):
                for order in (ORDER, []):
                    in_sql, in_python = await _both_ways(session, group_by, order)
                    assert [r.model_dump(mode="json") for r in in_sql] == [
                        r.model_dump(mode="json") for r in in_python
                    ]
    finally:
        await engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_sql_totals_give_the_rows_python_computes_from_every_deal(
    database_url: str, data: st.DataObject
) -> None:
    run = uuid.uuid4().hex[:10]
    deals = data.draw(st.integers(1, 6))
    changes = [c for n in range(deals) for c in data.draw(history(run, n))]
    asyncio.run(_apply_and_compare(database_url, changes))
