"""The metrics read every total from one snapshot: a deal committed while a metrics
request is reading is in none of its totals, never in the outcomes (won) but not in the
stage totals (entered no stage).

The interleaving is made deterministic by wrapping the repository's own reads: the stage
totals (on the second connection) read first, then a won deal is applied and summarised
(committed), and only then do the outcome totals (on the request's connection) read.
Without a shared snapshot the outcomes would count the deal and the stages would not."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.forecast_worker.deals.handler import apply_deal_changes
from services.forecast_worker.deals.projection import DEAL_CREATED, DEAL_UPDATED, Change, StageRules
from services.forecast_worker.metrics import repository
from services.forecast_worker.metrics.reading import metrics_rows
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.summary.summariser import summarise
from shared.db import create_engine, create_sessionmaker
from shared.ordering import OrderKey
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES

pytestmark = pytest.mark.integration

RULES = StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)
ORDER = ["Prospect", "closed won"]
START, END = date(2093, 1, 1), date(2093, 12, 31)
T0 = datetime(2093, 3, 1, tzinfo=UTC)


def _won_deal(run: str, owner: str) -> list[Change]:
    deal_id = f"{run}-won"
    steps = [
        (
            DEAL_CREATED,
            {
                "stage": "Prospect",
                "owner_id": owner,
                "amount": "100",
                "currency": "USD",
                "close_date": "2093-03-10",
                "created_at": T0.isoformat(),
            },
        ),
        (DEAL_UPDATED, {"stage": "closed won"}),
    ]
    return [
        Change(
            key=OrderKey.of(
                time=T0 + timedelta(days=n),
                sequence=None,
                source="test://snapshot",
                event_id=f"{deal_id}-{n}",
            ),
            deal_id=deal_id,
            event_type=kind,
            fields=fields,
        )
        for n, (kind, fields) in enumerate(steps)
    ]


def _mine(rows: list[MetricsRow], owner: str) -> MetricsRow | None:
    return next((r for r in rows if r.group == owner), None)


async def _read_while_a_deal_commits(
    url: str, owner: str, changes: list[Change], monkeypatch: pytest.MonkeyPatch
) -> tuple[MetricsRow | None, MetricsRow | None]:
    engine = create_engine(url, application_name="test-metrics-snapshot", pool_size=3)
    sessions = create_sessionmaker(engine)
    stage_totals, outcome_totals = repository.stage_totals, repository.outcome_totals
    committed = asyncio.Event()

    async def stages_then_commit(session: Any, **kwargs: Any) -> Any:
        totals = await stage_totals(session, **kwargs)
        async with engine.begin() as conn:
            await apply_deal_changes(conn, changes=changes, rules=RULES)
        await summarise(sessions)
        committed.set()
        return totals

    async def outcomes_after_commit(session: Any, **kwargs: Any) -> Any:
        await committed.wait()
        return await outcome_totals(session, **kwargs)

    async def read() -> MetricsRow | None:
        async with sessions() as db:
            rows = await metrics_rows(
                db, sessions, configured=ORDER, start=START, end=END, group_by="rep"
            )
        return _mine(rows, owner)

    try:
        with monkeypatch.context() as patched:
            patched.setattr(repository, "stage_totals", stages_then_commit)
            patched.setattr(repository, "outcome_totals", outcomes_after_commit)
            during = await read()
        after = await read()
    finally:
        await engine.dispose()
    return during, after


def test_a_deal_committed_during_a_read_is_in_none_of_its_totals(
    quiet_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:10]
    owner = f"rep-{run}"
    during, after = asyncio.run(
        _read_while_a_deal_commits(quiet_database_url, owner, _won_deal(run, owner), monkeypatch)
    )
    assert during is None, "the read began before the deal was committed"
    assert after is not None
    stages = {s.stage: (s.entered, s.advanced) for s in after.stages}
    assert (after.won_count, stages) == (1, {"Prospect": (1, 1), "closed won": (1, 0)})
