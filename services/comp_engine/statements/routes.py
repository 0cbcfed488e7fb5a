"""Statements a rep can verify, period close with approval, and admins' adjustments."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.access import check_visible
from services.comp_engine.deps import CompAdmin, ReadSession, Visible, WriteSession
from services.comp_engine.ledger import turn
from services.comp_engine.ledger.schemas import LineOut
from services.comp_engine.models import PeriodCloseRow
from services.comp_engine.statements import html, repository
from services.comp_engine.statements.coverage import not_covered
from services.comp_engine.statements.report import statement, totals_rows
from services.comp_engine.statements.schemas import (
    STATEMENT_CSV_COLUMNS,
    STATEMENT_TOTALS_CSV_COLUMNS,
    AdjustmentIn,
    CloseOut,
    StatementLineOut,
    StatementOut,
    TotalsOut,
)
from shared.edge import GuardedRoute
from shared.periods import parse_period
from shared.problems import Problem, problem_responses
from shared.tables import csv_response

router = APIRouter(tags=["comp"], route_class=GuardedRoute)

PeriodPath = Annotated[str, Path(max_length=20, description="`2026-Q4`, `2026-11`, `FY2026`")]
RepPath = Annotated[str, Path(min_length=1, max_length=256)]


def _period(label: str, where: str) -> str:
    try:
        return parse_period(label).label
    except ValueError as exc:
        raise Problem(422, f"{where}: {exc}") from None


@router.get(
    "/v1/comp/statements/{rep_id}/{period}",
    response_model=StatementOut,
    summary="A rep's statement: lines in plain words with traces, totals, attainment",
    responses={200: {"content": {"text/csv": {}, "text/html": {}}}, **problem_responses(422)},
)
async def get_statement(
    rep_id: RepPath,
    period: PeriodPath,
    visible: Visible,
    db: ReadSession,
    format: Annotated[Literal["json", "csv", "html"] | None, Query()] = None,
    part: Annotated[
        Literal["lines", "totals"],
        Query(description="With format=csv: the lines, or the totals in plain words."),
    ] = "lines",
) -> StatementOut | Response:
    check_visible(visible, rep_id, "statement")
    label = _period(period, "path.period")
    rows = await repository.lines(db, rep_id=rep_id, period=label)
    close = await repository.close_of(db, period=label)
    s = statement(
        rep_id,
        label,
        rows,
        held_ids=await repository.held_in_statement(db, rows=rows, close=close),
        closed=close is not None and close.closed_at is not None,
    )
    out = StatementOut(
        rep_id=s.rep_id,
        period=s.period,
        closed=s.closed,
        lines=[
            StatementLineOut(
                line_id=line.id,
                kind=line.kind,
                earned_in=line.period,
                deal_id=line.deal_id,
                rule=line.rule,
                role=line.role,
                amount=line.amount,
                currency=line.currency,
                held=line.held,
                explanation=line.explanation,
                trace=line.trace,
            )
            for line in s.lines
        ],
        totals={c: TotalsOut(**t, explained=s.totals_explained[c]) for c, t in s.totals.items()},
        attainment=s.attainment,
        draw_balance=s.draw_balance,
    )
    if format == "csv" and part == "totals":
        return csv_response(STATEMENT_TOTALS_CSV_COLUMNS, totals_rows(s), None)
    if format == "csv":
        items = (line.model_dump(mode="json") for line in out.lines)
        return csv_response(STATEMENT_CSV_COLUMNS, items, None)
    if format == "html":
        return HTMLResponse(html.page(out))
    return out


@router.post(
    "/v1/comp/periods/{period}/close",
    status_code=202,
    response_model=CloseOut,
    summary="Ask to close a period; another comp admin approves it",
    responses=problem_responses(409, 422),
)
async def request_close(period: PeriodPath, principal: CompAdmin, db: WriteSession) -> CloseOut:
    label = _period(period, "path.period")
    if await repository.close_of(db, period=label) is not None:
        raise Problem(409, f"Period {label} already has a close requested or done.")
    row = await repository.request_close(db, period=label, author=principal.key_id)
    return await _close_out(db, row)


@router.post(
    "/v1/comp/periods/{period}/approve",
    response_model=CloseOut,
    summary="Approve a requested close: the period is locked and its payable paid out",
    responses=problem_responses(403, 409, 422),
)
async def approve_close(period: PeriodPath, principal: CompAdmin, db: WriteSession) -> CloseOut:
    label = _period(period, "path.period")
    # In the ledger's turn before anything is read: a second approval of the same close
    # waits for the first and then finds it closed, and no posting is half-way in.
    await turn.take(db)
    row = await repository.close_of(db, period=label)
    if row is None or row.closed_at is not None:
        state = "is already closed" if row else "has no close requested"
        raise Problem(409, f"Period {label} {state}.")
    if row.requested_by == principal.key_id:
        raise Problem(403, "The close must be approved with another comp admin's key.")
    payouts = await repository.approve_close(db, row=row, author=principal.key_id)
    return (await _close_out(db, row)).model_copy(update={"payout_lines": payouts})


async def _close_out(db: AsyncSession, row: PeriodCloseRow) -> CloseOut:
    period = parse_period(row.period)
    lengths = await repository.plan_lengths_over(db, period=period)
    return CloseOut.model_validate(row).model_copy(
        update={"not_covered": not_covered(period, lengths)}
    )


@router.post(
    "/v1/comp/adjustments",
    status_code=201,
    response_model=LineOut,
    summary="A comp admin's adjustment, with its reason, shown on the rep's statement",
    responses=problem_responses(409, 422),
)
async def add_adjustment(body: AdjustmentIn, principal: CompAdmin, db: WriteSession) -> LineOut:
    label = _period(body.period, "body.period")
    await turn.take(db)  # the close checked below cannot be approved before this commits
    close = await repository.close_of(db, period=label)
    if close is not None and close.closed_at is not None:
        target = await repository.first_open_after(db, period=label)
        raise Problem(
            409,
            f"Period {label} is closed and its statements are final. Post the adjustment to "
            f"{target} (the first open period) with a reason naming {label}.",
        )
    values = {**body.model_dump(), "period": label}
    return LineOut.model_validate(
        await repository.add_adjustment(db, values=values, author=principal.key_id)
    )
