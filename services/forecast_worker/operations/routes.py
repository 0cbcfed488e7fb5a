"""The worker's dead-letter queue: list what could not be applied, replay it once fixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.forecast_worker.deps import Consumer, ReadSession, WriteSession
from services.forecast_worker.operations.schemas import DeadLetterOut, DeadLetterPage
from shared import auth, consumer_store
from shared.consumer import replay
from shared.dispatch import Unprocessable
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.tables import decode_id_cursor, next_cursor
from shared.values import Id64

router = APIRouter(tags=["deals", "operations"], route_class=GuardedRoute)
"""Tagged "deals" too: the dead letters are deal and activity events, and API clients
generated from the document have found these operations under both tags since they were
published."""


@router.get(
    "/v1/forecast/dead-letters",
    response_model=DeadLetterPage,
    summary="Events the worker could not apply, with the reason",
)
async def list_dead_letters(
    _: auth.Admin,
    db: ReadSession,
    consumer: Consumer,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> DeadLetterPage:
    after = decode_id_cursor(cursor)
    rows = await consumer_store.list_dead_letters(
        db, tables=consumer.tables, after=after, limit=limit, include_replayed=include_replayed
    )
    return DeadLetterPage(
        items=[DeadLetterOut.model_validate(r) for r in rows],
        next_cursor=next_cursor(rows, limit, "id"),
    )


@router.post(
    "/v1/forecast/dead-letters/{letter_id}/replay",
    response_model=DeadLetterOut,
    summary="Apply a dead-lettered event again (after the cause was fixed)",
    responses=problem_responses(404, 409, 422),
)
async def replay_dead_letter(
    letter_id: Annotated[Id64, Path()], _: auth.Admin, db: WriteSession, consumer: Consumer
) -> DeadLetterOut:
    conn = await db.connection()
    tables = consumer.tables
    row = await consumer_store.get_dead_letter(conn, tables=tables, letter_id=letter_id)
    if row is None:
        raise Problem(404, f"No dead letter {letter_id}.")
    if row.replayed_at is not None:
        raise Problem(409, f"Dead letter {letter_id} was already replayed.")
    letter = consumer_store.as_letter(row)
    try:
        await replay(conn, letter, spec=consumer)
    except Unprocessable as exc:
        raise Problem(422, f"The event still cannot be applied: {exc}") from exc
    await consumer_store.mark_replayed(conn, tables=tables, letter_ids=[letter_id])
    return DeadLetterOut.model_validate(
        await consumer_store.get_dead_letter(conn, tables=tables, letter_id=letter_id)
    )
