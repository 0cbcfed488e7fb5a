"""An `as_of` roll-up equals the roll-up computed live at that instant (issue 8, Done when),
for any generated stream: deal creates and updates (amount, stage, close date, owner,
category), deletes, exact ties, and quotas set and revised before and after the instant.

The stream's events of up to the instant are applied through the worker's own dispatch and
the live sums taken; then the rest is applied and the sums asked as of the instant. Both
group by the hierarchy of the same day (the instant's, as a live roll-up then would), whose
events are all known from the start: the hierarchy is effective-dated, not kept by when it
was learnt, which `test_forecast_hierarchy.py` covers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import consumer_spec
from services.forecast_worker.rollup import repository
from services.forecast_worker.rollup.repository import GroupBy
from shared import topics
from shared.consumer import ConsumerSpec, apply_records
from shared.db import create_engine
from shared.dispatch import Record
from shared.periods import hierarchy_day, parse_period
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.integration.test_forecast_rollup import EXAMPLE, _example_config
from tests.support.events import CREATED, DELETED, UPDATED, event

pytestmark = pytest.mark.integration

__all__ = ["_example_config"]
"""The roll-up tests' example configuration (autouse there), applied around this test too."""

REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v2"
QUOTA = "com.salesops.quota.set.v1"
CURRENCY = "XTS"
T0 = datetime(2026, 4, 1, tzinfo=UTC)
PERIOD = parse_period("2026-Q2")
GROUPINGS: tuple[GroupBy, ...] = ("rep", "team", "manager", "region")

DEAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "amount": st.sampled_from(["1000", "2500.50", "99999.99"]),
    "stage": st.sampled_from(["Prospecting", "Engaging", "Won", "Lost"]),
    "close_date": st.sampled_from(["2026-03-31", "2026-04-20", "2026-06-30", "2026-07-01"]),
    "owner_id": st.sampled_from(["r0", "r1", "r2"]),
    "forecast_category": st.sampled_from(["pipeline", "commit", "best_case", None]),
}


def _at(data: st.DataObject) -> datetime:
    """Every 12 hours over 20 days, so that events tie with each other and the instant."""
    return T0 + timedelta(hours=12 * data.draw(st.integers(0, 40)))


def _hierarchy() -> list[dict[str, Any]]:
    """Known before any deal: two teams in two regions, reps moving between them."""
    known = T0 - timedelta(days=30)
    out = [
        event(TEAM, {"team_id": t, "name": t, "manager_id": f"m{t}", "region": f"g{t}"}, time=known)
        for t in ("A", "B")
    ]
    moves = (("r0", "A", "2026-01-01"), ("r1", "B", "2026-01-01"), ("r1", "A", "2026-04-10"))
    for rep_id, team_id, effective in (*moves, ("r2", "B", "2026-01-01")):
        body = {"rep_id": rep_id, "name": rep_id, "team_id": team_id}
        out.append(event(REP, {**body, "effective_from": effective}, time=known))
    return out


def _stream(data: st.DataObject) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for quota_id, owner in (("q-rep", {"rep_id": "r0"}), ("q-team", {"team_id": "A"})):
        for amount in data.draw(st.lists(st.sampled_from(["5000", "8000", "9000"]), max_size=3)):
            body = {"quota_id": quota_id, **owner, "amount": amount, "currency": CURRENCY}
            period = {"period_start": "2026-04-01", "period_end": "2026-06-30"}
            out.append(event(QUOTA, {**body, **period}, time=_at(data)))
    deals = data.draw(st.integers(1, 5))
    for deal in range(deals):
        fields = {name: data.draw(DEAL_FIELDS[name]) for name in DEAL_FIELDS}
        created = {"deal_id": f"d{deal}", **fields, "currency": CURRENCY}
        out.append(event(CREATED, created, time=_at(data)))
    for _ in range(data.draw(st.integers(0, 15))):
        deal = data.draw(st.integers(0, deals - 1))
        kind = data.draw(st.sampled_from([UPDATED, UPDATED, UPDATED, DELETED]))
        change: dict[str, Any] = {"deal_id": f"d{deal}"}
        if kind == UPDATED:
            names = data.draw(st.lists(st.sampled_from(sorted(DEAL_FIELDS)), min_size=1))
            change |= {name: data.draw(DEAL_FIELDS[name]) for name in names}
        out.append(
            event(kind, change, time=_at(data), sequence=data.draw(st.sampled_from([None, 1])))
        )
    return out


_NAMED = ("rep_id", "team_id", "manager_id", "owner_id", "deal_id", "quota_id", "region")


def _named(events: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [
        {
            **ev,
            "id": f"{tag}-{ev['id']}",
            "data": {
                k: f"{tag}-{v}" if k in _NAMED and v is not None else v
                for k, v in ev["data"].items()
            },
        }
        for ev in events
    ]


async def _deliver(engine: AsyncEngine, spec: ConsumerSpec, events: list[dict[str, Any]]) -> None:
    records = [
        Record(topics.DEAL if "deal_id" in ev["data"] else topics.REFERENCE, 0, n, orjson.dumps(ev))
        for n, ev in enumerate(events)
    ]
    async with engine.begin() as conn:
        await apply_records(conn, records, spec=spec)


async def _sums(
    engine: AsyncEngine, stages: StageTable, tag: str, as_of: datetime | None, day: Any
) -> dict[str, list[Any]]:
    """The run's rows of each grouping (the null group is every test's, so left out)."""
    out: dict[str, list[Any]] = {}
    async with AsyncSession(engine) as session:
        for group_by in GROUPINGS:
            rows = await repository.group_sums(
                session,
                stages=stages,
                group_by=group_by,
                start=PERIOD.start,
                end=PERIOD.end,
                day=day,
                as_of=as_of,
            )
            out[group_by] = [r for r in rows if r.group is not None and tag in r.group]
    return out


@pytest.mark.timeout(600)
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_as_of_equals_live_at_that_instant(database_url: str, data: st.DataObject) -> None:
    instant = _at(data) + timedelta(hours=data.draw(st.sampled_from([0, 5])))
    stream = _stream(data)
    tag = uuid.uuid4().hex[:10]
    before = _named(_hierarchy() + [ev for ev in stream if ev["time"] <= _text(instant)], tag)
    after = _named([ev for ev in stream if ev["time"] > _text(instant)], tag)
    stages = StageTable.of(ForecastConfig.model_validate(yaml.safe_load(EXAMPLE.read_text())))
    spec = consumer_spec(StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES))
    engine = create_engine(database_url, application_name="test-as-of-property", pool_size=1)
    day = hierarchy_day(PERIOD, instant)
    try:
        await _deliver(engine, spec, before)
        live = await _sums(engine, stages, tag, None, day)
        await _deliver(engine, spec, after)
        then = await _sums(engine, stages, tag, instant, day)
        assert then == live
    finally:
        await engine.dispose()


def _text(instant: datetime) -> str:
    """As `tests.support.events.event` writes a time, which orders as the instant does."""
    return instant.isoformat().replace("+00:00", "Z")
