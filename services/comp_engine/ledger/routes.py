"""GET /v1/comp/ledger: the lines, JSON or CSV, filtered by rep and posted period, paged
by line id (`after_id` or the cursor) for incremental pulls; GET /v1/comp/waiting: what
cannot be computed yet, paged the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.comp_engine.access import check_visible, reps_asked
from services.comp_engine.deps import ReadSession, Visible
from services.comp_engine.ledger import repository
from services.comp_engine.ledger.schemas import (
    LINE_CSV_COLUMNS,
    WAITING_CSV_COLUMNS,
    LineOut,
    LinePage,
    WaitingOut,
    WaitingPage,
)
from shared.edge import GuardedRoute
from shared.query_params import (
    TABLE_RESPONSES,
    CursorQuery,
    Format,
    OptionalPeriodQuery,
    PageLimit,
)
from shared.tables import (
    MAX_ID,
    csv_response,
    decode_id_cursor,
    decode_instant_id_cursor,
    next_cursor,
    wants_csv,
)

router = APIRouter(tags=["comp"], route_class=GuardedRoute)


@router.get(
    "/v1/comp/ledger",
    response_model=LinePage,
    summary="Ledger lines in id order (posted period; incremental by line id); a rep's or "
    "manager's key sees only its reps' lines",
    responses=TABLE_RESPONSES,
)
async def ledger(
    request: Request,
    visible: Visible,
    db: ReadSession,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    period: OptionalPeriodQuery = None,
    after_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: str | None = None,
    format: Format = None,
) -> BaseModel | Response:
    after = decode_id_cursor(cursor) if cursor else after_id
    if rep_id is not None:
        check_visible(visible, rep_id, "ledger lines")
    rows = await repository.lines(
        db, rep_ids=visible, rep_id=rep_id, period=period, after=after, limit=limit
    )
    items = [LineOut.model_validate(r) for r in rows]
    following = next_cursor(rows, limit, "id")
    if wants_csv(request, format):
        return csv_response(LINE_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), following)
    return LinePage(items=items, next_cursor=following)


@router.get(
    "/v1/comp/waiting",
    response_model=WaitingPage,
    summary="What commission cannot compute yet, and why (e.g. a deal's currency has no FX "
    "rate), oldest first: cleared by itself once the missing data arrives",
    responses=TABLE_RESPONSES,
)
async def waiting(
    request: Request,
    visible: Visible,
    db: ReadSession,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: PageLimit = 100,
    cursor: CursorQuery = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.waiting(
        db,
        rep_ids=reps_asked(visible, rep_id, "waits"),
        after=decode_instant_id_cursor(cursor),
        limit=limit,
    )
    items = [WaitingOut.model_validate(r) for r in rows]
    following = next_cursor(rows, limit, "since", "id")
    if wants_csv(request, format):
        return csv_response(
            WAITING_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), following
        )
    return WaitingPage(items=items, next_cursor=following)
