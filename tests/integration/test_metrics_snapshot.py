"""The metrics read every total from one snapshot, in which the summary is caught up: a
deal committed while a metrics request is reading is in none of its totals, never in the
outcomes (won) but not in the stage totals (entered no stage).

The interleavings are made deterministic by wrapping the code's own steps: a won deal is
applied (committed) right after the request's catch-up, or between its stage totals (read
on the request's connection) and its outcome totals (on the second connection). Reading
the deals in a snapshot the catch-up did not run in, or without a shared snapshot, the
outcomes would count the deal and the stages would not."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.forecast_worker.deals.handler import apply_deal_changes
from services.forecast_worker.deals.projection import DEAL_CREATED, DEAL_UPDATED, Change, StageRules
from services.forecast_worker.metrics import reading, repository
from services.forecast_worker.metrics.reading import metrics_rows
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.summary import repository as summary
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
    url: str, owner: str, changes: list[Change], monkeypatch: pytest.MonkeyPatch, *, when: str
) -> tuple[MetricsRow | None, MetricsRow | None]:
    """The request's row for `owner` while `changes` are committed (`when`: right after
    the catch-up, or between the stage and the outcome totals), and once they are."""
    engine = create_engine(url, application_name="test-metrics-snapshot", pool_size=3)
    sessions = create_sessionmaker(engine)
    catch_up = summary.catch_up
    stage_totals, outcome_totals = repository.stage_totals, repository.outcome_totals
    committed = asyncio.Event()

    async def commit_the_deal() -> None:
        async with engine.begin() as conn:
            await apply_deal_changes(conn, changes=changes, rules=RULES)
        committed.set()

    async def catch_up_then_commit(session: Any, **kwargs: Any) -> int:
        deals = await catch_up(session, **kwargs)
        await commit_the_deal()
        return deals

    async def stages_then_commit(session: Any, **kwargs: Any) -> Any:
        totals = await stage_totals(session, **kwargs)
        await commit_the_deal()
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
            if when == "after the catch-up":
                patched.setattr(summary, "catch_up", catch_up_then_commit)
            else:
                patched.setattr(repository, "stage_totals", stages_then_commit)
                patched.setattr(repository, "outcome_totals", outcomes_after_commit)
            during = await read()
        assert committed.is_set()
        after = await read()
    finally:
        await engine.dispose()
    return during, after


@pytest.mark.parametrize("when", ["after the catch-up", "between the totals"])
def test_a_deal_committed_during_a_read_is_in_none_of_its_totals(
    quiet_database_url: str, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    run = uuid.uuid4().hex[:10]
    owner = f"rep-{run}"
    during, after = asyncio.run(
        _read_while_a_deal_commits(
            quiet_database_url, owner, _won_deal(run, owner), monkeypatch, when=when
        )
    )
    assert during is None, "the read's snapshot was taken before the deal was committed"
    assert after is not None
    stages = {s.stage: (s.entered, s.advanced) for s in after.stages}
    assert (after.won_count, stages) == (1, {"Prospect": (1, 1), "closed won": (1, 0)})


def test_a_catch_up_committed_between_the_snapshot_and_the_lock_starts_the_read_again(
    quiet_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another catch-up (the summariser's) commits right after the request's snapshot is
    taken and before the request takes the catch-up lock: the request's own catch-up would
    rewrite what that one wrote, on a snapshot without it, so it fails (serialization
    failure) and the read takes a new snapshot, where the deal is summarised."""
    run = uuid.uuid4().hex[:10]
    owner = f"rep-{run}"
    exported: list[str] = []

    async def scenario() -> MetricsRow | None:
        engine = create_engine(quiet_database_url, application_name="test-metrics-retry")
        sessions = create_sessionmaker(engine)
        export = reading.export_snapshot

        async def export_then_let_another_catch_up_commit(session: Any) -> str:
            snapshot = await export(session)
            if not exported:
                await summarise(sessions)
            exported.append(snapshot)
            return snapshot

        try:
            await summarise(sessions)
            async with engine.begin() as conn:
                await apply_deal_changes(conn, changes=_won_deal(run, owner), rules=RULES)
            monkeypatch.setattr(reading, "export_snapshot", export_then_let_another_catch_up_commit)
            async with sessions() as db:
                rows = await metrics_rows(
                    db, sessions, configured=ORDER, start=START, end=END, group_by="rep"
                )
        finally:
            await engine.dispose()
        return _mine(rows, owner)

    mine = asyncio.run(scenario())
    assert len(exported) == 2, "the first snapshot's catch-up lost to the other one"
    assert mine is not None
    stages = {s.stage: (s.entered, s.advanced) for s in mine.stages}
    assert (mine.won_count, stages) == (1, {"Prospect": (1, 1), "closed won": (1, 0)})
