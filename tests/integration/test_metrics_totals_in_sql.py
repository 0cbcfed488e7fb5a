"""The metrics totals PostgreSQL computes (`outcome_totals` from the deals; `stage_totals`,
`first_seen_stages` and `created_pipeline` from the summary the summariser keeps) give
exactly the rows that the Python reference (`tests.support.metrics_reference`) computes
from every closed deal and its stage path read from the deals and their versions, on
generated histories applied through the worker's own set-based apply in two batches, the
summary caught up after each (so deals that close, reopen, move, are deleted or get a late
event after they were summarised are summarised again): repeated and unknown stages,
versions without a stage change, times to the microsecond, deals without a creation time,
closes inside and outside the range. Compared as the JSON the API answers, so a decimal's
places count too. A catch-up with nothing new changes no summary row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.deals.handler import apply_deal_changes
from services.forecast_worker.deals.projection import DEAL_CREATED, DEAL_UPDATED, Change, StageRules
from services.forecast_worker.metrics import repository
from services.forecast_worker.metrics.figures import StageTotals
from services.forecast_worker.metrics.report import GroupTotals, rows_from_totals
from services.forecast_worker.metrics.repository import GroupBy
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.summary.summariser import summarise
from shared.db import create_engine, create_sessionmaker
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.support.metrics_reference import closed_deals, metrics_rows, stage_order, stage_paths

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
    closed = await closed_deals(session, **span, group_by=group_by)
    paths = await stage_paths(session, **span)
    reference = metrics_rows(closed, paths, stage_order(order, paths), opened, created)
    if not order:
        assert await repository.first_seen_stages(session, **span) == stage_order([], paths)
        order = stage_order([], paths)
    outcomes = await repository.outcome_totals(session, **span, group_by=group_by)
    stages = await repository.stage_totals(session, **span, group_by=group_by, order=order)
    totals = {key: GroupTotals(o, stages.get(key, {})) for key, o in outcomes.items()}
    return rows_from_totals(totals, order, opened, created), reference


_SUMMARY = (
    "SELECT v.*, c.created_on, c.owner_id AS created_by, c.amount::text AS created_amount "
    "FROM forecast.deals AS d "
    "LEFT JOIN forecast.stage_visits AS v ON v.deal_id = d.deal_id "
    "LEFT JOIN forecast.deal_creations AS c ON c.deal_id = d.deal_id "
    "WHERE d.deal_id LIKE :run ORDER BY d.deal_id, v.visit"
)


async def _apply_and_compare(url: str, run: str, changes: list[Change], cut: int) -> None:
    engine = create_engine(url, application_name="test-metrics-totals", pool_size=1)
    sessions = create_sessionmaker(engine)
    try:
        for batch in (changes[:cut], changes[cut:]):
            async with engine.begin() as conn:
                await apply_deal_changes(conn, changes=batch, rules=RULES)
            assert await summarise(sessions) >= len({c.deal_id for c in batch})
        async with engine.connect() as conn:
            summary = (await conn.execute(text(_SUMMARY), {"run": f"{run}-%"})).all()
        await summarise(sessions)
        async with engine.connect() as conn:
            again = (await conn.execute(text(_SUMMARY), {"run": f"{run}-%"})).all()
        assert again == summary, "a catch-up with nothing new changes nothing"
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
    quiet_database_url: str, data: st.DataObject
) -> None:
    run = uuid.uuid4().hex[:10]
    deals = data.draw(st.integers(1, 6))
    changes = data.draw(
        st.permutations([c for n in range(deals) for c in data.draw(history(run, n))])
    )
    cut = data.draw(st.integers(0, len(changes)))
    asyncio.run(_apply_and_compare(quiet_database_url, run, changes, cut))


def test_a_stage_visited_again_without_moving_on_did_not_advance(quiet_database_url: str) -> None:
    """Qualify, Prospect, Qualify again, then lost: the deal advanced from Prospect (Qualify
    comes after it) but not from Qualify, although a visit to Qualify follows its first."""
    run = uuid.uuid4().hex[:10]
    deal_id, owner = f"{run}-revisit", f"rep-{run}"
    path = ["Qualify", "Prospect", "Qualify", "closed lost"]
    close = (START + timedelta(days=10)).isoformat()
    changes = [
        Change(
            key=OrderKey.of(
                time=T0 + timedelta(days=n),
                sequence=None,
                source="test://metrics",
                event_id=f"{deal_id}-{n}",
            ),
            deal_id=deal_id,
            event_type=DEAL_UPDATED if n else DEAL_CREATED,
            fields={"stage": stage, "owner_id": owner, "close_date": close, "currency": "USD"},
        )
        for n, stage in enumerate(path)
    ]
    asyncio.run(_apply_and_compare(quiet_database_url, run, changes, len(changes)))

    async def stages() -> dict[str, StageTotals]:
        engine = create_engine(quiet_database_url, application_name="test-metrics-revisit")
        try:
            async with AsyncSession(engine) as session:
                totals = await repository.stage_totals(
                    session, start=START, end=END, group_by="rep", order=ORDER
                )
        finally:
            await engine.dispose()
        return totals[(owner, "USD")]

    mine = asyncio.run(stages())
    assert (mine["Prospect"].entered, mine["Prospect"].advanced) == (1, 1)
    assert (mine["Qualify"].entered, mine["Qualify"].advanced) == (1, 0)
    assert mine["Qualify"].days_middle == (1.0, 1.0)
