"""Synthetic history: reproducible from its seed, valid, and shaped like a deal's life."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.cli import app
from services.datasets.generator import (
    DealPlan,
    HistoryParams,
    OrgParams,
    deal_history,
    synthetic_org,
)
from shared.events import validate_event

REPS = ["ana", "bo", "cy"]
SOURCE = "test://generator"
BUSY = HistoryParams(
    max_changes=12,
    push_probability=0.3,
    pull_in_probability=0.2,
    amount_probability=0.2,
    category_probability=0.2,
    reassign_probability=0.1,
)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


@st.composite
def plans(draw: st.DrawFn) -> DealPlan:
    created = datetime(2017, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 500_000)))
    life = timedelta(days=draw(st.integers(0, 200)), hours=draw(st.integers(0, 23)))
    return DealPlan(
        deal_id=draw(st.text("abcdef0123456789", min_size=1, max_size=8)),
        owner_id=draw(st.sampled_from(REPS)),
        created=created,
        amount=Decimal(draw(st.integers(1, 100_000))),
        end=created + life + timedelta(hours=1),
        outcome=draw(st.sampled_from(["won", "lost", None])),
    )


@given(plans(), st.integers(0, 2**32))
@settings(max_examples=200, deadline=None)
def test_a_deals_history_is_valid_reproducible_and_inside_its_life(
    plan: DealPlan, seed: int
) -> None:
    history = deal_history(plan, seed=seed, reps=REPS, params=BUSY, source=SOURCE)
    assert history == deal_history(plan, seed=seed, reps=REPS, params=BUSY, source=SOURCE)
    close_date: date | None = None
    for change in history:
        event = change.event
        validate_event(event)
        assert event["data"]["deal_id"] == plan.deal_id
        at = _time(event)
        if change.kind == "settle":
            assert at == plan.end
            assert plan.outcome is not None
            continue
        assert plan.created < at < plan.end, "history lies strictly inside the deal's life"
        new = event["data"].get("close_date")
        if new is not None:
            new_date = date.fromisoformat(new)
            if change.kind == "push":
                assert close_date is not None
                assert new_date > close_date
            elif change.kind == "pull_in":
                assert close_date is not None
                assert new_date < close_date
                assert new_date > at.date(), "a pull-in never moves the close into the past"
            else:
                assert change.kind == "expected_close"
            close_date = new_date
        if change.kind == "reassign":
            assert event["data"]["owner_id"] in REPS
    times = [(_time(c.event), c.event["sequence"]) for c in history]
    assert times == sorted(times)


def test_a_busy_history_has_every_kind_of_change() -> None:
    created = datetime(2017, 1, 1, tzinfo=UTC)
    kinds = {
        change.kind
        for n in range(200)
        for change in deal_history(
            DealPlan(f"d{n}", "ana", created, Decimal(1000), created + timedelta(days=120), "won"),
            seed=7,
            reps=REPS,
            params=BUSY,
            source=SOURCE,
        )
    }
    assert kinds == {
        "expected_close",
        "push",
        "pull_in",
        "amount_up",
        "amount_down",
        "category",
        "reassign",
        "settle",
    }


def test_a_deals_history_does_not_depend_on_the_seed_of_another_deal() -> None:
    created = datetime(2017, 1, 1, tzinfo=UTC)
    plan = DealPlan("d1", "ana", created, Decimal(1000), created + timedelta(days=90))
    one = deal_history(plan, seed=1, reps=REPS, source=SOURCE)
    other = deal_history(plan, seed=2, reps=REPS, source=SOURCE)
    assert one != other
    assert one == deal_history(plan, seed=1, reps=REPS, source=SOURCE)


@given(st.integers(0, 2**32), st.integers(1, 30), st.integers(0, 60))
@settings(max_examples=25, deadline=None)
def test_a_synthetic_org_is_reproducible_valid_and_closes_last(
    seed: int, reps: int, deals: int
) -> None:
    events = list(synthetic_org(seed, reps, deals))
    assert events == list(synthetic_org(seed, reps, deals))
    assert len({(e["source"], e["id"]) for e in events}) == len(events)
    per_deal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rep_ids = set()
    team_ids = set()
    for event in events:
        validate_event(event, max_future=timedelta(0))
        data = event["data"]
        if "deal_id" in data:
            per_deal[data["deal_id"]].append(event)
        elif "rep_id" in data:
            rep_ids.add(data["rep_id"])
            assert data["team_id"] in team_ids, "a rep's team is announced before the rep"
        else:
            team_ids.add(data["team_id"])
    assert len(rep_ids) == reps
    assert len(per_deal) == deals
    params = OrgParams()
    for deal_events in per_deal.values():
        created = deal_events[0]
        assert created["type"] == "com.salesops.deal.created.v1"
        assert created["data"]["owner_id"] in rep_ids
        closes = [e for e in deal_events if e["data"].get("status") in ("won", "lost")]
        last = max(_time(e) for e in deal_events)
        assert last < datetime.combine(params.end, datetime.min.time(), UTC)
        if closes:
            assert last == _time(closes[0]), "nothing is dated after a deal's close"


def test_a_synthetic_org_streams() -> None:
    stream = synthetic_org(1, 100, 10**12)
    head = list(islice(stream, 3000))
    assert len(head) == 3000
    assert head[-1]["type"].startswith("com.salesops.deal.")


def test_dataset_generate_writes_the_org_as_ndjson(tmp_path: Path) -> None:
    out = tmp_path / "org.ndjson"
    args = ["dataset", "generate", "--seed", "5", "--reps", "4", "--deals", "30", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == list(synthetic_org(5, 4, 30))
