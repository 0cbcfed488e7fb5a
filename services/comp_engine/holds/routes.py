"""Holds: earned but not payable until released, on one line, a deal or a rep (comp admins).
A held line stays on the statement, counted as earned and held, and a period close leaves
it unpaid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from services.comp_engine.deps import CompAdmin, ReadSession, WriteSession
from services.comp_engine.ledger import turn
from services.comp_engine.models import HoldRow
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, CursorQuery, Format, PageLimit
from shared.tables import csv_response, decode_id_cursor, next_cursor, wants_csv

router = APIRouter(tags=["comp"], route_class=GuardedRoute)
HOLD_CSV_COLUMNS = (
    "id",
    "scope",
    "target",
    "reason",
    "created_by",
    "created_at",
    "released_by",
    "released_at",
)


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["line", "deal", "rep"]
    target: str = Field(min_length=1, max_length=256, description="Line id, deal id or rep id.")
    reason: str = Field(min_length=1, max_length=2000)


class HoldOut(HoldIn):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: int
    created_by: str
    created_at: datetime
    released_by: str | None
    released_at: datetime | None


class HoldPage(BaseModel):
    items: list[HoldOut]
    next_cursor: str | None


@router.post(
    "/v1/comp/holds",
    status_code=201,
    response_model=HoldOut,
    summary="Hold a line, a deal or a rep",
    responses=problem_responses(422),
)
async def add_hold(body: HoldIn, principal: CompAdmin, db: WriteSession) -> HoldOut:
    # In the ledger's turn: a close reads what is held twice (its payout, then the lines
    # its statement shows held), and a hold placed between would leave them disagreeing.
    await turn.take(db)
    row = HoldRow(**body.model_dump(), created_by=principal.key_id)
    db.add(row)
    await db.flush()
    return HoldOut.model_validate(row)


@router.post(
    "/v1/comp/holds/{hold_id}/release",
    response_model=HoldOut,
    summary="Release a hold: its lines become payable",
    responses=problem_responses(404, 409),
)
async def release_hold(
    hold_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: CompAdmin, db: WriteSession
) -> HoldOut:
    await turn.take(db)  # as `add_hold`; and two releases of one hold take turns
    row = await db.get(HoldRow, hold_id)
    if row is None:
        raise Problem(404, f"No hold {hold_id}.")
    if row.released_at is not None:
        raise Problem(409, f"Hold {hold_id} was released at {row.released_at.isoformat()}.")
    row.released_by, row.released_at = principal.key_id, datetime.now(UTC)
    await db.flush()
    return HoldOut.model_validate(row)


@router.get(
    "/v1/comp/holds",
    response_model=HoldPage,
    summary="Holds in id order: those not yet released, or (active=false) the released ones",
    responses=TABLE_RESPONSES,
)
async def list_holds(
    request: Request,
    _: CompAdmin,
    db: ReadSession,
    active: Annotated[
        bool, Query(description="true: holds not yet released; false: released holds")
    ] = True,
    limit: PageLimit = 100,
    cursor: CursorQuery = None,
    format: Format = None,
) -> BaseModel | Response:
    wanted = HoldRow.released_at.is_(None) if active else HoldRow.released_at.is_not(None)
    stmt = select(HoldRow).where(wanted).order_by(HoldRow.id).limit(limit)
    if (after := decode_id_cursor(cursor)) is not None:
        stmt = stmt.where(HoldRow.id > after)
    rows = (await db.scalars(stmt)).all()
    items = [HoldOut.model_validate(r) for r in rows]
    following = next_cursor(rows, limit, "id")
    if wants_csv(request, format):
        return csv_response(HOLD_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), following)
    return HoldPage(items=items, next_cursor=following)
