"""Compare what the running worker serves with what the stream should have produced."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.events import expected_deals
from tests.support.infra import query


def post_in_batches(
    client: httpx.Client, events: list[dict[str, Any]], size: int
) -> tuple[int, int]:
    accepted = duplicates = 0
    for i in range(0, len(events), size):
        r = client.post("/v1/events", json=events[i : i + size])
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["rejected"] == [], body["rejected"]
        accepted += body["accepted"]
        duplicates += body["duplicates"]
    return accepted, duplicates


def served_deals(client: httpx.Client, prefix: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, "include_deleted": "true"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/deals", params=params).json()
        out.update({d["deal_id"]: d for d in page["items"] if d["deal_id"].startswith(prefix)})
        cursor = page["next_cursor"]
        if not cursor:
            return out


def _same(field: str, want: Any, got: Any) -> bool:
    if want is None or got is None:
        return want is got
    if field == "amount":
        return Decimal(want) == Decimal(got)
    if field == "created_at":
        return str(want).replace("Z", "+00:00")[:19] == str(got).replace("Z", "+00:00")[:19]
    return bool(want == got)


def mismatches(expected: dict[str, dict[str, Any]], served: dict[str, dict[str, Any]]) -> list[str]:
    problems = [f"{d}: missing" for d in expected if d not in served]
    problems += [f"{d}: unexpected" for d in served if d not in expected]
    for deal, want in expected.items():
        got = served.get(deal)
        if got is None:
            continue
        for field, value in want.items():
            if not _same(field, value, got.get(field)):
                problems.append(f"{deal}.{field}: want {value!r}, got {got.get(field)!r}")
    return problems


def wait_for_projection(
    client: httpx.Client, events: list[dict[str, Any]], prefix: str, timeout: float = 120
) -> dict[str, dict[str, Any]]:
    expected = expected_deals(events)
    deadline = time.monotonic() + timeout
    problems: list[str] = ["not checked yet"]
    while time.monotonic() < deadline:
        served = served_deals(client, prefix)
        problems = mismatches(expected, served)
        if not problems:
            return served
        time.sleep(0.5)
    raise AssertionError(f"{len(problems)} mismatches, e.g. {problems[:10]}")


def history_problems(
    client: httpx.Client, events: list[dict[str, Any]], deals: list[str]
) -> list[str]:
    """How the deals' histories differ from one version per distinct event, in CRM time."""
    distinct = {(e["source"], e["id"]): e for e in events}
    per_deal = Counter(e["data"]["deal_id"] for e in distinct.values())
    problems: list[str] = []
    for deal in deals:
        r = client.get(f"/v1/deals/{deal}/history")
        versions = r.json()["versions"] if r.status_code == 200 else []
        if len(versions) != per_deal[deal]:
            problems.append(f"{deal}: {len(versions)} versions, want {per_deal[deal]}")
            continue
        starts = [v["valid_from"] for v in versions]
        if starts != sorted(starts) or [v["valid_to"] for v in versions[:-1]] != starts[1:]:
            problems.append(f"{deal}: versions out of order or not contiguous")
        if versions and versions[-1]["valid_to"] is not None:
            problems.append(f"{deal}: the last version is closed")
    return problems


def assert_history_has_one_version_per_event(
    client: httpx.Client, events: list[dict[str, Any]], deals: list[str]
) -> None:
    """Nothing applied twice, nothing missing: one version per distinct event, in CRM time."""
    problems = history_problems(client, events, deals)
    assert not problems, problems[:10]


def wait_for_history(
    client: httpx.Client, events: list[dict[str, Any]], deals: list[str], timeout: float = 120
) -> None:
    """Until every deal has one version per distinct event: the current fields can be right
    while older changes of a deal are still on their way."""
    deadline = time.monotonic() + timeout
    while problems := history_problems(client, events, deals):
        assert time.monotonic() < deadline, f"{len(problems)} histories differ: {problems[:10]}"
        time.sleep(0.5)


def incarnations(database_url: str) -> list[int]:
    """How many events each broker incarnation had republished, oldest first."""
    rows = asyncio.run(
        query(
            database_url,
            "SELECT republished_events FROM pipeline.broker_incarnations ORDER BY detected_at",
        )
    )
    return [int(r[0]) for r in rows]


_PROJECTION = (
    "SELECT * FROM forecast.deals ORDER BY deal_id",
    "SELECT * FROM forecast.deal_versions ORDER BY deal_id, version",
    "SELECT * FROM forecast.deal_changes ORDER BY source, event_id",
    'SELECT topic, partition, "offset", reason FROM forecast.dead_letters ORDER BY id',
)
_WRITTEN_AT = {"updated_at", "applied_at"}


def projection_rows(database_url: str) -> list[list[dict[str, Any]]]:
    """Every row of the deal projection and the dead letters, but when each was written."""
    return [
        [{k: v for k, v in r._mapping.items() if k not in _WRITTEN_AT} for r in rows]
        for rows in (asyncio.run(query(database_url, sql)) for sql in _PROJECTION)
    ]


def stored_offsets(database_url: str) -> dict[tuple[str, int], int]:
    rows = asyncio.run(
        query(database_url, "SELECT topic, partition, next_offset FROM forecast.consumer_offsets")
    )
    return {(r.topic, r.partition): int(r.next_offset) for r in rows}


def settled_offsets(
    database_url: str, *, reached: dict[tuple[str, int], int], timeout: float = 120
) -> dict[tuple[str, int], int]:
    """The worker's stored offsets once every partition of `reached` is at least there and
    nothing moved between two polls."""
    deadline = time.monotonic() + timeout
    last: dict[tuple[str, int], int] | None = None
    while True:
        now = stored_offsets(database_url)
        if now == last and all(now.get(p, -1) >= o for p, o in reached.items()):
            return now
        assert time.monotonic() < deadline, f"offsets never settled: {now} (want >= {reached})"
        last = now
        time.sleep(0.5)


def rewind_offsets(database_url: str) -> None:
    """What an operator does to make the worker read its topics again from the start."""

    async def rewind() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE forecast.consumer_offsets SET next_offset = 0"))
        finally:
            await engine.dispose()

    asyncio.run(rewind())
