"""GET /v1/comp/amortization: the period's expense of capitalised commissions (ASC 340-40),
per line, with what is amortised and what remains; JSON or CSV for finance."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select

from services.comp_engine.access import check_visible
from services.comp_engine.calc.amortization import CAPITALISED_KINDS, capitalised, in_period
from services.comp_engine.deps import ReadSession, Visible
from services.comp_engine.models import LedgerLineRow
from shared.edge import GuardedRoute
from shared.money import DecimalAmount
from shared.periods import parse_period
from shared.problems import Problem
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import csv_response, wants_csv

router = APIRouter(tags=["comp"], route_class=GuardedRoute)

CSV_COLUMNS = (
    "line_id",
    "rep_id",
    "deal_id",
    "kind",
    "currency",
    "capitalised",
    "first_month",
    "term_months",
    "expense",
    "amortised_to_date",
    "balance",
)


class AmortizationRow(BaseModel):
    line_id: int
    rep_id: str
    deal_id: str
    kind: str
    currency: str
    capitalised: DecimalAmount
    first_month: date
    term_months: int
    expense: DecimalAmount
    amortised_to_date: DecimalAmount
    balance: DecimalAmount


class Amortization(BaseModel):
    period: str
    rows: list[AmortizationRow]
    expense: dict[str, DecimalAmount]
    """Per currency."""


@router.get(
    "/v1/comp/amortization",
    response_model=Amortization,
    summary="Capitalised commissions amortised over their contracts: the period's expense",
    responses=TABLE_RESPONSES,
)
async def amortization(
    request: Request,
    visible: Visible,
    db: ReadSession,
    period: PeriodQuery,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    format: Format = None,
) -> BaseModel | Response:
    try:
        wanted = parse_period(period)
    except ValueError as exc:
        raise Problem(422, f"query.period: {exc}") from None
    if rep_id is not None:
        check_visible(visible, rep_id, "amortization")
    stmt = select(LedgerLineRow).where(
        LedgerLineRow.kind.in_(sorted(CAPITALISED_KINDS)),
        LedgerLineRow.trace["credit"]["contract_months"].is_not(None),
    )
    if rep_id is not None:
        stmt = stmt.where(LedgerLineRow.rep_id == rep_id)
    elif visible is not None:
        stmt = stmt.where(LedgerLineRow.rep_id.in_(sorted(visible)))
    rows: list[AmortizationRow] = []
    totals: dict[str, Decimal] = {}
    for line in await db.scalars(stmt.order_by(LedgerLineRow.id)):
        credit = line.trace.get("credit") or {}
        item = capitalised(
            line_id=line.id,
            rep_id=line.rep_id,
            deal_id=line.deal_id,
            kind=line.kind,
            amount=line.amount,
            currency=line.currency,
            booked_on=date.fromisoformat(credit["booked_on"]) if "booked_on" in credit else None,
            contract_months=credit.get("contract_months"),
        )
        if item is None or (found := in_period(item, wanted)) is None:
            continue
        rows.append(
            AmortizationRow(
                line_id=item.line_id,
                rep_id=item.rep_id,
                deal_id=item.deal_id,
                kind=item.kind,
                currency=item.currency,
                capitalised=item.amount,
                first_month=item.first_month,
                term_months=item.months,
                expense=found.expense,
                amortised_to_date=found.amortised_to_date,
                balance=found.balance,
            )
        )
        totals[item.currency] = totals.get(item.currency, Decimal(0)) + found.expense
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return Amortization(period=wanted.label, rows=rows, expense=totals)
