"""The comp engine's dead letters: calculations that wait for data they cannot do without (a
deal in a currency without an FX rate, an attainment table without a quota), each with the
reason. A wait ends by itself once its data arrives; an operator lists them here, and
replays one (the rep is recalculated) after fixing what the reason names. Comp admins only:
the reasons name reps and deals across the whole organisation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.comp_engine.dead_letters import repository
from services.comp_engine.dead_letters.schemas import (
    CSV_COLUMNS,
    CompDeadLetterOut,
    CompDeadLetterPage,
    CompReplayOut,
)
from services.comp_engine.deps import CompAdmin, ReadSession, WriteSession
from services.comp_engine.intake.repository import mark_dirty
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, Format
from shared.tables import csv_response, decode_id_cursor, next_cursor, wants_csv
from shared.values import Id64

router = APIRouter(tags=["comp", "operations"], route_class=GuardedRoute)


@router.get(
    "/v1/comp/dead-letters",
    response_model=CompDeadLetterPage,
    summary="Calculations waiting for data, with the reason (comp admins), in id order",
    responses=TABLE_RESPONSES,
)
async def list_dead_letters(
    request: Request,
    _: CompAdmin,
    db: ReadSession,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    reason: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Part of the reason")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.letters(
        db, rep_id=rep_id, reason=reason, after=decode_id_cursor(cursor), limit=limit
    )
    items = [CompDeadLetterOut.model_validate(r) for r in rows]
    after = next_cursor(rows, limit, "id")
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, (i.model_dump(mode="json") for i in items), after)
    return CompDeadLetterPage(items=items, next_cursor=after)


@router.post(
    "/v1/comp/dead-letters/{letter_id}/replay",
    status_code=202,
    response_model=CompReplayOut,
    summary="Recalculate the rep of a dead letter (after its cause was fixed)",
    responses=problem_responses(404, 422),
)
async def replay_dead_letter(
    letter_id: Annotated[Id64, Path()], _: CompAdmin, db: WriteSession
) -> CompReplayOut:
    row = await repository.letter(db, letter_id=letter_id)
    if row is None:
        raise Problem(404, f"No comp dead letter {letter_id}: it may have ended already.")
    await mark_dirty(await db.connection(), rep_ids={row.rep_id})
    return CompReplayOut(letter=CompDeadLetterOut.model_validate(row), recalculation="queued")
