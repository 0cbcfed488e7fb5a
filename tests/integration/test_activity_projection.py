"""Activity deletions in the forecast projection, applied by the worker's own batch code to
the real database in an order the test chooses: a deletion is keyed by the activity and
its other events by their deal, so they travel on different partitions and may reach the
worker in any order. Whatever the order, the newest event decides."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import consumer_spec
from shared import topics
from shared.consumer import apply_records
from shared.dispatch import BatchOutcome, Record
from tests.support.events import event

pytestmark = pytest.mark.integration

LOGGED = "com.salesops.activity.logged.v1"
DELETED = "com.salesops.activity.deleted.v1"
SPEC = consumer_spec(StageRules.of(["won"], ["lost"]))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def activity() -> str:
    return f"act-{uuid.uuid4().hex[:10]}"


def logged(activity_id: str, at: str, subject: str = "first call") -> dict[str, Any]:
    data = {
        "activity_id": activity_id,
        "kind": "call",
        "deal_id": "deal-1",
        "rep_id": "rep-ana",
        "occurred_at": "2026-05-10T09:00:00Z",
        "properties": {"subject": subject},
    }
    return event(LOGGED, data, time=at)


def deleted(activity_id: str, at: str, **data: Any) -> dict[str, Any]:
    return event(DELETED, {"activity_id": activity_id, **data}, time=at)


async def apply(engine: AsyncEngine, *events: dict[str, Any]) -> BatchOutcome:
    records = [Record(topics.ACTIVITY, 0, n, orjson.dumps(e)) for n, e in enumerate(events)]
    async with engine.begin() as conn:
        return await apply_records(conn, records, spec=SPEC)


async def stored(engine: AsyncEngine, activity_id: str) -> Row[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT kind, rep_id, properties, deleted_at, event_time, event_id"
                " FROM forecast.activities WHERE activity_id = :id"
            ),
            {"id": activity_id},
        )
        return result.one()


def iso(row: Row[Any], column: str) -> str | None:
    value = getattr(row, column)
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def test_a_deleted_activity_keeps_its_details_for_audit(
    engine: AsyncEngine, activity: str
) -> None:
    await apply(engine, logged(activity, "2026-05-01T10:00:00Z"))
    deletion = deleted(activity, "2026-05-02T10:00:00Z")
    outcome = await apply(engine, deletion)

    row = await stored(engine, activity)
    assert (outcome.applied, outcome.dead_letters) == (1, [])
    assert iso(row, "deleted_at") == "2026-05-02T10:00:00Z"
    assert (row.kind, row.rep_id, row.properties) == ("call", "rep-ana", {"subject": "first call"})
    assert row.event_id == deletion["id"]


async def test_an_older_logged_event_does_not_bring_it_back_a_newer_one_does(
    engine: AsyncEngine, activity: str
) -> None:
    await apply(engine, logged(activity, "2026-05-01T10:00:00Z"))
    await apply(engine, deleted(activity, "2026-05-02T10:00:00Z"))
    await apply(engine, logged(activity, "2026-05-01T12:00:00Z", subject="late edit"))

    row = await stored(engine, activity)
    assert iso(row, "deleted_at") == "2026-05-02T10:00:00Z"
    assert row.properties == {"subject": "first call"}

    await apply(engine, logged(activity, "2026-05-03T10:00:00Z", subject="restored"))

    row = await stored(engine, activity)
    assert row.deleted_at is None
    assert row.properties == {"subject": "restored"}
    assert iso(row, "event_time") == "2026-05-03T10:00:00Z"


async def test_a_deletion_that_arrives_first_holds_against_the_older_activity(
    engine: AsyncEngine, activity: str
) -> None:
    deletion = deleted(activity, "2026-05-02T10:00:00Z")
    await apply(engine, deletion)

    row = await stored(engine, activity)
    assert row.kind is None, "nothing but the deletion is known yet"
    assert iso(row, "deleted_at") == "2026-05-02T10:00:00Z"

    await apply(engine, logged(activity, "2026-05-01T10:00:00Z"))

    row = await stored(engine, activity)
    assert iso(row, "deleted_at") == "2026-05-02T10:00:00Z"
    assert (row.kind, row.rep_id) == ("call", "rep-ana"), "the details are filled in"
    assert row.event_id == deletion["id"], "the deletion stays the newest event"


async def test_a_deletion_older_than_the_activity_is_ignored(
    engine: AsyncEngine, activity: str
) -> None:
    await apply(engine, logged(activity, "2026-05-03T10:00:00Z"))
    await apply(engine, deleted(activity, "2026-05-02T10:00:00Z"))

    assert (await stored(engine, activity)).deleted_at is None


@pytest.mark.parametrize("deletion_first", [True, False])
async def test_one_batch_with_both_gives_the_same_answer_in_either_order(
    engine: AsyncEngine, activity: str, deletion_first: bool
) -> None:
    events = [logged(activity, "2026-05-01T10:00:00Z"), deleted(activity, "2026-05-02T10:00:00Z")]
    outcome = await apply(engine, *(reversed(events) if deletion_first else events))

    row = await stored(engine, activity)
    assert outcome.applied == 2
    assert iso(row, "deleted_at") == "2026-05-02T10:00:00Z"
    assert row.kind == "call"


async def test_deleted_at_is_taken_from_the_event_when_it_says(
    engine: AsyncEngine, activity: str
) -> None:
    await apply(engine, logged(activity, "2026-05-01T10:00:00Z"))
    deletion = deleted(activity, "2026-05-02T10:00:00Z", deleted_at="2026-05-01T18:00:00Z")
    await apply(engine, deletion)
    await apply(engine, deletion)  # a redelivery changes nothing

    row = await stored(engine, activity)
    assert iso(row, "deleted_at") == "2026-05-01T18:00:00Z"
    assert iso(row, "event_time") == "2026-05-02T10:00:00Z"
    assert row.event_id == deletion["id"]
