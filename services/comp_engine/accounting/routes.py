"""GET /v1/comp/amortization: the period's expense of capitalised commissions (ASC 340-40),
per line, with what is amortised and what remains; JSON or CSV for finance. A line whose
booking was clawed back (and not reversed since) ends at the clawback: the ledger's
clawback lines are read once, grouped per booking, for the lines in view."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from services.comp_engine.access import check_visible
from services.comp_engine.calc.amortization import (
    CAPITALISED_KINDS,
    Capitalised,
    capitalised,
    in_period,
)
from services.comp_engine.calc.lines import Kind
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
    "ended_on",
    "written_off",
)

Booking = tuple[str, str, int, str]
"""rep_id, deal_id, booking, role: what a clawback line shares with the lines it claws."""


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
    ended_on: date | None = Field(
        description="The day the contract ended: the booking's clawback (lost, deleted or "
        "cancelled inside the window), when it stands; null while the contract runs"
    )
    written_off: DecimalAmount = Field(
        description="The part of `expense` that writes the asset off in the period of "
        "`ended_on` (ASC 340-40-35-3: nothing is left to recover it); 0 otherwise"
    )


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
    candidates: list[tuple[Booking, Capitalised]] = []
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
        # Without its end an item runs longest, so this keeps every line an end could show.
        if item is not None and in_period(item, wanted) is not None:
            key = (line.rep_id, line.deal_id, line.booking, line.role)
            candidates.append((key, item))
    ends = await _ends(db, {key for key, _ in candidates})
    rows: list[AmortizationRow] = []
    totals: dict[str, Decimal] = {}
    for key, unended in candidates:
        item = replace(unended, ended=ends.get(key))
        if (found := in_period(item, wanted)) is None:
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
                ended_on=item.ended,
                written_off=found.written_off,
            )
        )
        totals[item.currency] = totals.get(item.currency, Decimal(0)) + found.expense
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return Amortization(period=wanted.label, rows=rows, expense=totals)


async def _ends(db: AsyncSession, bookings: Collection[Booking]) -> dict[Booking, date]:
    """The day each booking's contract ended: its clawback's `at`, when the clawback lines of
    the booking do not net to nil (a reversed clawback leaves the contract running). One
    grouped query over the bookings' deals; the latest clawback names the day."""
    if not bookings:
        return {}
    at = LedgerLineRow.trace["clawback"]["at"].astext
    latest = func.array_agg(aggregate_order_by(at, LedgerLineRow.id.desc())).filter(
        at.is_not(None)
    )[1]
    stmt = (
        select(
            LedgerLineRow.rep_id,
            LedgerLineRow.deal_id,
            LedgerLineRow.booking,
            LedgerLineRow.role,
            latest,
        )
        .where(
            LedgerLineRow.kind == Kind.CLAWBACK,
            # As arrays, not a bind parameter per value: an admin's view can hold more
            # deals than a statement takes parameters (32,767).
            LedgerLineRow.rep_id == any_(_texts("end_reps", {key[0] for key in bookings})),
            LedgerLineRow.deal_id == any_(_texts("end_deals", {key[1] for key in bookings})),
        )
        .group_by(
            LedgerLineRow.rep_id, LedgerLineRow.deal_id, LedgerLineRow.booking, LedgerLineRow.role
        )
        .having(func.sum(LedgerLineRow.amount) != 0)
    )
    ends: dict[Booking, date] = {}
    for rep_id, deal_id, booking, role, day in await db.execute(stmt):
        key = (rep_id, deal_id, booking, role)
        if key in bookings and day is not None:
            ends[key] = datetime.fromisoformat(day).date()
    return ends


def _texts(name: str, values: Collection[str]) -> BindParameter[Any]:
    texts: Any = sorted(values)
    return bindparam(name, texts, type_=ARRAY(Text))
