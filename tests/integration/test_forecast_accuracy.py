"""GET /v1/forecast/accuracy against the real stack: two closed months, snapshots
backfilled at chosen instants and a call recorded in the past, every figure checked against
arithmetic done here; and bad input.

The call is written straight into `forecast.calls` with a past `recorded_at`: the API
refuses calls for closed periods, and a call recorded then is what history would hold."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import insert

from services.forecast_worker.calls.models import Call
from tests.integration.test_forecast_rollup import (
    _example_config,
    mine,
    post,
    rep,
    rollup,
    team,
)
from tests.integration.test_forecast_snapshots import (
    closed,
    created,
    placed,
    post_snapshot,
    sessions,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["_example_config", "sessions"]
"""Fixtures shared with the roll-up and snapshot tests."""

D = Decimal
PLACES = D("0.0001")


def ratio(a: Decimal, b: Decimal) -> str:
    return str((a / b).quantize(PLACES, rounding=ROUND_HALF_EVEN))


def expected(pairs: list[tuple[int, int]]) -> tuple[str, str, str, str]:
    """bias, WAPE, hit rates within 5 % and 10 % of (forecast, actual) pairs, all actual > 0."""
    pcts = [D(f - a) / D(a) for f, a in pairs]
    return (
        ratio(sum(pcts, D(0)), D(len(pcts))),
        ratio(D(sum(abs(f - a) for f, a in pairs)), D(sum(a for _, a in pairs))),
        ratio(D(sum(abs(p) <= D("0.05") for p in pcts)), D(len(pcts))),
        ratio(D(sum(abs(p) <= D("0.10") for p in pcts)), D(len(pcts))),
    )


async def accuracy(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    r = await client.get("/v1/forecast/accuracy", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_snapshots_against_what_closed(client: httpx.AsyncClient, sessions: Any) -> None:
    tag = uuid4().hex[:8]
    r1 = f"r1-{tag}"
    a1, a2, a3, a4 = (f"a{n}-{tag}" for n in range(1, 5))
    at_start = "2020-04-01T00:00:00Z"
    await post(
        client,
        team(tag, "A", "north", "2020-01-01"),
        rep(r1, f"A-{tag}", "2020-01-01"),
        created(a1, r1, "1000", "2020-05-20", at_start, forecast_category="commit"),
        created(a2, r1, "500", "2020-05-25", at_start, forecast_category="commit"),
        created(a3, r1, "200", "2020-05-10", at_start, forecast_category="best_case"),
        created(a4, r1, "800", "2020-06-15", at_start, forecast_category="commit"),
        closed(a1, "won", "2020-05-20T10:00:00Z"),
        closed(a2, "lost", "2020-05-25T10:00:00Z"),
        closed(a3, "won", "2020-05-10T10:00:00Z"),
        closed(a4, "won", "2020-06-15T10:00:00Z"),
    )
    async with sessions() as session, session.begin():
        await session.execute(
            insert(Call).values(
                rep_id=r1,
                period="2020-05",
                period_start=datetime(2020, 5, 1).date(),
                period_end=datetime(2020, 6, 1).date(),
                commit=D(1100),
                currency="XTS",
                author="R1",
                key_id="test",
                recorded_at=datetime(2020, 5, 1, tzinfo=UTC),
            )
        )

    async def applied() -> bool:
        may = mine(await rollup(client, period="2020-05", group_by="rep"), tag, null_group=False)
        june = mine(await rollup(client, period="2020-06", group_by="rep"), tag, null_group=False)
        return (may.get(r1, {}).get("closed_won"), june.get(r1, {}).get("closed_won")) == (
            "1200",
            "800",
        )

    await eventually(lambda: placed(client, [r1], "2020-05-01"))
    await eventually(applied)
    for period, as_of in (
        ("2020-05", "2020-05-04T00:00:00Z"),
        ("2020-05", "2020-06-01T00:00:00Z"),
        ("2020-06", "2020-06-01T00:00:00Z"),
        ("2020-05", "2020-06-01T00:00:01Z"),
        ("2020-05", "2020-07-15T00:00:00Z"),
    ):
        r = await post_snapshot(client, "", {"period": period, "as_of": as_of})
        assert r.status_code == 201, r.text

    answer = await accuracy(
        client, from_period="2020-05", to_period="2020-06", group_by="rep", by_week="true"
    )
    assert [p["label"] for p in answer["periods"]] == ["2020-05", "2020-06"]
    made = [
        (f["period"], f["as_of"][:10], f["weeks_before_end"], f["measure"], f["forecast"],
         f["actual"], f["error"], f["error_pct"])
        for f in answer["forecasts"]
        if f["group"] == r1
    ]  # fmt: skip
    # The two 2020-05 snapshots taken after its end knew the outcome: not forecasts.
    assert made == [
        ("2020-05", "2020-05-04", 4, "call_commit", "1100", "1200", "-100", "-0.0833"),
        ("2020-05", "2020-05-04", 4, "commit_plus_closed", "1500", "1200", "300", "0.2500"),
        ("2020-05", "2020-05-04", 4, "best_case_plus_commit_plus_closed", "1700", "1200", "500",
         "0.4167"),
        ("2020-05", "2020-06-01", 0, "call_commit", "1100", "1200", "-100", "-0.0833"),
        ("2020-05", "2020-06-01", 0, "commit_plus_closed", "1200", "1200", "0", "0.0000"),
        ("2020-05", "2020-06-01", 0, "best_case_plus_commit_plus_closed", "1200", "1200", "0",
         "0.0000"),
        ("2020-06", "2020-06-01", 4, "commit_plus_closed", "800", "800", "0", "0.0000"),
        ("2020-06", "2020-06-01", 4, "best_case_plus_commit_plus_closed", "800", "800", "0",
         "0.0000"),
    ]  # fmt: skip

    summaries: dict[tuple[str, int | None], dict[str, Any]] = {
        (s["measure"], s["weeks_before_end"]): s for s in answer["summaries"] if s["group"] == r1
    }
    want = {
        ("commit_plus_closed", None): [(1500, 1200), (1200, 1200), (800, 800)],
        ("commit_plus_closed", 4): [(1500, 1200), (800, 800)],
        ("commit_plus_closed", 0): [(1200, 1200)],
        ("call_commit", None): [(1100, 1200), (1100, 1200)],
        ("best_case_plus_commit_plus_closed", 4): [(1700, 1200), (800, 800)],
    }
    for key, pairs in want.items():
        s = summaries[key]
        got = (s["bias"], s["wape"], s["hit_rate_5"], s["hit_rate_10"])
        assert got == expected(pairs), key
        assert s["forecasts"] == len(pairs), key
    assert summaries[("commit_plus_closed", None)]["periods"] == 2
    assert summaries[("call_commit", None)]["periods"] == 1

    teams = await accuracy(client, from_period="2020-05", to_period="2020-06", group_by="team")
    measures: dict[str, list[str]] = defaultdict(list)
    for f in teams["forecasts"]:
        if f["group"] == f"A-{tag}":
            measures[f["measure"]].append(f["forecast"])
    assert dict(measures) == {
        "commit_plus_closed": ["1500", "1200", "800"],
        "best_case_plus_commit_plus_closed": ["1700", "1200", "800"],
    }, "calls are reps': a team row carries none"
    overall = [s for s in teams["summaries"] if s["group"] == f"A-{tag}"]
    assert [s["weeks_before_end"] for s in overall] == [None, None], "by_week not asked"

    text = (
        await client.get(
            "/v1/forecast/accuracy",
            params={
                "from_period": "2020-05",
                "to_period": "2020-06",
                "group_by": "rep",
                "format": "csv",
                "table": "summaries",
            },
        )
    ).text
    header, *lines = text.splitlines()
    assert header.split(",")[:6] == [
        "group", "currency", "measure", "weeks_before_end", "periods", "forecasts",
    ]  # fmt: skip
    assert any(line.startswith(f"{r1},XTS,commit_plus_closed,,2,3,") for line in lines)


async def test_bad_input_and_ranges_without_closed_periods(client: httpx.AsyncClient) -> None:
    async def refused(**params: str) -> list[str]:
        r = await client.get("/v1/forecast/accuracy", params={"group_by": "rep", **params})
        assert r.status_code == 422, r.text
        return [e["location"] for e in r.json()["errors"]]

    assert await refused(from_period="2020-13", to_period="2020-06") == ["query.from_period"]
    assert await refused(from_period="2020-01", to_period="Q2") == ["query.to_period"]
    assert await refused(from_period="2020-06", to_period="2020-01") == ["query.from_period"]
    assert await refused(from_period="2020-01", to_period="2020-Q2") == ["query.to_period"]
    assert await refused(from_period="2000-01", to_period="2020-12") == ["query.to_period"]
    assert await refused(from_period="1990-Q1", to_period="2020-Q1") == ["query.to_period"]
    assert await refused(from_period="FY0001", to_period="FY9999") == ["query.to_period"]
    r = await client.get(
        "/v1/forecast/accuracy", params={"from_period": "2020-01", "to_period": "2020-02"}
    )
    assert r.status_code == 422, "group_by is required"
    future = await accuracy(client, from_period="2099-01", to_period="2099-03", group_by="team")
    assert future == {
        "from_period": "2099-01",
        "to_period": "2099-03",
        "group_by": "team",
        "periods": [],
        "forecasts": [],
        "summaries": [],
    }
