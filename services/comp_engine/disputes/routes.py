"""Disputes on ledger lines: opened by whoever may see the line (a rep on its own), every
step kept with author, time and comment; resolving posts an adjustment on the rep's
statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.access import (
    check_may_dispute,
    check_visible,
    reps_asked,
    visible_reps,
)
from services.comp_engine.deps import CompReader, ReadSession, Visible, WriteSession
from services.comp_engine.disputes import repository
from services.comp_engine.disputes.workflow import FINAL, Status, StepRefused, check_step
from services.comp_engine.ledger import turn
from services.comp_engine.models import DisputeRow, DisputeStepRow, LedgerLineRow
from services.comp_engine.statements import repository as statements
from shared import auth
from shared.edge import GuardedRoute
from shared.money import CurrencyCode, DecimalAmount
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, CursorQuery, Format, PageLimit
from shared.tables import csv_response, decode_id_cursor, next_cursor, wants_csv

router = APIRouter(tags=["comp"], route_class=GuardedRoute)
DisputeId = Annotated[int, Path(ge=1, le=2**63 - 1)]
DISPUTE_CSV_COLUMNS = ("id", "line_id", "rep_id", "status", "opened_by", "opened_at", "steps")
"""`steps` is one JSON cell: a dispute's steps, oldest first."""


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: int = Field(ge=1, le=2**63 - 1)
    comment: str = Field(min_length=1, max_length=4000)


class AdjustmentPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: DecimalAmount
    currency: CurrencyCode


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    comment: str = Field(min_length=1, max_length=4000)
    adjustment: AdjustmentPart | None = None


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    author: str
    comment: str
    at: datetime
    adjustment_line_id: int | None


class DisputeOut(BaseModel):
    id: int
    line_id: int
    rep_id: str
    status: str
    opened_by: str
    opened_at: datetime
    steps: list[StepOut]


class DisputePage(BaseModel):
    items: list[DisputeOut]
    next_cursor: str | None


async def _outs(db: AsyncSession, rows: Sequence[DisputeRow]) -> list[DisputeOut]:
    steps = await repository.steps_of(db, dispute_ids={r.id for r in rows})
    return [
        DisputeOut(
            id=row.id,
            line_id=row.line_id,
            rep_id=row.rep_id,
            status=row.status,
            opened_by=row.opened_by,
            opened_at=row.opened_at,
            steps=[StepOut.model_validate(s) for s in steps.get(row.id, [])],
        )
        for row in rows
    ]


async def _out(db: AsyncSession, row: DisputeRow) -> DisputeOut:
    (out,) = await _outs(db, [row])
    return out


@router.post(
    "/v1/comp/disputes",
    status_code=201,
    response_model=DisputeOut,
    summary="Dispute a ledger line",
    responses=problem_responses(403, 404, 409, 422),
)
async def open_dispute(body: DisputeIn, principal: CompReader, db: WriteSession) -> DisputeOut:
    check_may_dispute(principal)
    line = await db.get(LedgerLineRow, body.line_id)
    visible = await visible_reps(db, principal)
    if line is None or (visible is not None and line.rep_id not in visible):
        raise Problem(404, f"No ledger line {body.line_id}.")
    pending = select(DisputeRow.id).where(
        DisputeRow.line_id == line.id, DisputeRow.status.not_in([s.value for s in FINAL])
    )
    if (existing := await db.scalar(pending)) is not None:
        raise Problem(409, f"Line {line.id} already has dispute {existing} under way.")
    row = DisputeRow(
        line_id=line.id,
        rep_id=line.rep_id,
        status=Status.OPEN.value,
        opened_by=principal.key_id,
        opened_at=datetime.now(UTC),
    )
    db.add(row)
    await db.flush()
    db.add(
        DisputeStepRow(
            dispute_id=row.id,
            status=Status.OPEN.value,
            author=principal.key_id,
            comment=body.comment,
            at=row.opened_at,
        )
    )
    await db.flush()
    return await _out(db, row)


@router.get(
    "/v1/comp/disputes/{dispute_id}",
    response_model=DisputeOut,
    summary="A dispute and its steps",
    responses=problem_responses(404),
)
async def get_dispute(dispute_id: DisputeId, visible: Visible, db: ReadSession) -> DisputeOut:
    row = await db.get(DisputeRow, dispute_id)
    if row is None:
        raise Problem(404, f"No dispute {dispute_id}.")
    check_visible(visible, row.rep_id, f"dispute {dispute_id}")
    return await _out(db, row)


@router.get(
    "/v1/comp/disputes",
    response_model=DisputePage,
    summary="Disputes the key may see, newest first (by id), with their steps",
    responses=TABLE_RESPONSES,
)
async def list_disputes(
    request: Request,
    visible: Visible,
    db: ReadSession,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[Status | None, Query(description="Disputes in this state now")] = None,
    limit: PageLimit = 100,
    cursor: CursorQuery = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.disputes(
        db,
        rep_ids=reps_asked(visible, rep_id, "disputes"),
        status=None if status is None else status.value,
        before=decode_id_cursor(cursor),
        limit=limit,
    )
    items = await _outs(db, rows)
    following = next_cursor(rows, limit, "id")
    if wants_csv(request, format):
        return csv_response(
            DISPUTE_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), following
        )
    return DisputePage(items=items, next_cursor=following)


@router.post(
    "/v1/comp/disputes/{dispute_id}/steps",
    response_model=DisputeOut,
    summary="Move a dispute on: info requested, answered, resolved, rejected, withdrawn",
    responses=problem_responses(403, 404, 409, 422),
)
async def add_step(
    dispute_id: DisputeId, body: StepIn, principal: CompReader, db: WriteSession
) -> DisputeOut:
    check_may_dispute(principal)
    row = await db.get(DisputeRow, dispute_id, with_for_update=True)
    visible = await visible_reps(db, principal)
    if row is None or (visible is not None and row.rep_id not in visible):
        raise Problem(404, f"No dispute {dispute_id}.")
    try:
        check_step(
            Status(row.status),
            body.status,
            admin=principal.allows(auth.COMP_ADMIN),
            disputant=principal.rep_id == row.rep_id or principal.key_id == row.opened_by,
            adjusts=body.adjustment is not None,
        )
    except StepRefused as refused:
        raise Problem(refused.status, f"Dispute {dispute_id}: {refused}.") from None
    adjustment_id = None
    if body.adjustment is not None:
        await turn.take(db)  # the first open period found below stays open until commit
        line = await db.get(LedgerLineRow, row.line_id)
        assert line is not None
        period = await statements.first_open_after(db, period=line.posted_period)
        values = {
            "rep_id": row.rep_id,
            "period": period,
            "deal_id": line.deal_id,
            "amount": body.adjustment.amount,
            "currency": body.adjustment.currency,
            "reason": f"dispute {dispute_id} on line {line.id}: {body.comment}",
        }
        adjustment_id = (
            await statements.add_adjustment(db, values=values, author=principal.key_id)
        ).id
    row.status = body.status.value
    db.add(
        DisputeStepRow(
            dispute_id=row.id,
            status=body.status.value,
            author=principal.key_id,
            comment=body.comment,
            adjustment_line_id=adjustment_id,
            at=datetime.now(UTC),
        )
    )
    await db.flush()
    return await _out(db, row)
