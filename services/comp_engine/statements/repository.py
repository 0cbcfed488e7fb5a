"""Statement and period-close SQL: a rep's lines posted in a period, the holds on them, the
period's close, and the payout lines a close posts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.comp_engine.calc.lines import Kind
from services.comp_engine.calc.posting import first_open
from services.comp_engine.ledger import turn
from services.comp_engine.models import (
    AssignmentRow,
    HoldRow,
    LedgerLineRow,
    PeriodCloseRow,
    PlanVersionRow,
)
from services.comp_engine.plans.document import PlanDocument
from shared.periods import Period, parse_period

ZERO = Decimal(0)


async def lines(db: AsyncSession, *, rep_id: str, period: str) -> Sequence[LedgerLineRow]:
    stmt = (
        select(LedgerLineRow)
        .where(LedgerLineRow.rep_id == rep_id, LedgerLineRow.posted_period == period)
        .order_by(LedgerLineRow.kind, LedgerLineRow.deal_id, LedgerLineRow.id)
    )
    return (await db.scalars(stmt)).all()


def _held(line: type[LedgerLineRow]) -> ColumnElement[bool]:
    """An unreleased hold covers the line: on the line itself, its deal, or its rep."""
    return (
        select(HoldRow.id)
        .where(
            HoldRow.released_at.is_(None),
            or_(
                and_(HoldRow.scope == "line", HoldRow.target == cast(line.id, Text)),
                and_(HoldRow.scope == "deal", HoldRow.target == line.deal_id),
                and_(HoldRow.scope == "rep", HoldRow.target == line.rep_id),
            ),
        )
        .exists()
    )


async def close_of(db: AsyncSession, *, period: str) -> PeriodCloseRow | None:
    return await db.get(PeriodCloseRow, period)


async def held_in_statement(
    db: AsyncSession, *, rows: Sequence[LedgerLineRow], close: PeriodCloseRow | None
) -> set[int]:
    """The lines a statement shows on hold: those its period's close found held once the
    period is closed (a statement is frozen at its close), else those held now."""
    if close is not None and close.closed_at is not None and close.held_line_ids is not None:
        return set(close.held_line_ids)
    if not rows:
        return set()
    stmt = select(LedgerLineRow.id).where(
        LedgerLineRow.id.in_(sorted(r.id for r in rows)), _held(LedgerLineRow)
    )
    return set(await db.scalars(stmt))


async def request_close(db: AsyncSession, *, period: str, author: str) -> PeriodCloseRow:
    row = PeriodCloseRow(period=period, requested_by=author, requested_at=datetime.now(UTC))
    db.add(row)
    await db.flush()
    return row


async def approve_close(db: AsyncSession, *, row: PeriodCloseRow, author: str) -> int:
    """Close the period and post each rep's unpaid payable as a payout line; returns how
    many payout lines were posted.

    Unpaid payable is every line not on hold posted in this period or in an earlier closed
    one, plus the payouts already posted there (negative): so a line that was held when its
    period closed, and released since, is paid at this close, and nothing is paid twice.
    Payout lines themselves are never held, and a hold put on a line already paid takes
    nothing back (earlier periods count only when they still owe the rep). The payout's
    trace says how much of it pays this period's lines and how much earlier periods'.

    In the ledger's turn (`ledger/turn.py`): the sums see every line posted before, and
    a recalculation posting after sees the close."""
    await turn.take(db)
    row.approved_by = author
    row.closed_at = datetime.now(UTC)
    period = row.period
    start = parse_period(period).start
    closed = await db.scalars(
        select(PeriodCloseRow.period).where(
            PeriodCloseRow.closed_at.is_not(None), PeriodCloseRow.period != period
        )
    )
    earlier = {label for label in closed if parse_period(label).start < start}
    line = LedgerLineRow
    paying = or_(line.kind == Kind.PAYOUT.value, ~_held(line))
    this = func.coalesce(func.sum(line.amount).filter(line.posted_period == period), ZERO)
    before = func.coalesce(func.sum(line.amount).filter(line.posted_period != period), ZERO)
    sums = await db.execute(
        select(line.rep_id, line.currency, this, before)
        .where(line.posted_period.in_(sorted(earlier | {period})), paying)
        .group_by(line.rep_id, line.currency)
    )
    this_period: dict[tuple[str, str], Decimal] = {}
    balances: dict[tuple[str, str], Decimal] = {}
    for rep_id, currency, in_period, in_earlier in sums:
        this_period[(rep_id, currency)] = in_period
        balances[(rep_id, currency)] = in_period + max(in_earlier, ZERO)
    row.held_line_ids = list(
        await db.scalars(
            select(line.id)
            .where(line.posted_period == period, line.kind != Kind.PAYOUT.value, _held(line))
            .order_by(line.id)
        )
    )
    payouts = [
        LedgerLineRow(
            rep_id=rep_id,
            period=period,
            posted_period=period,
            kind=Kind.PAYOUT.value,
            rule="payout",
            deal_id="",
            booking=0,
            role="",
            amount=-balance,
            currency=currency,
            trace={
                "payout": {
                    "payable": str(balance),
                    "this_period": str(this_period[(rep_id, currency)]),
                    "earlier_periods": str(balance - this_period[(rep_id, currency)]),
                    "approved_by": author,
                }
            },
            cause="admin",
            author=author,
        )
        for (rep_id, currency), balance in sorted(balances.items())
        if balance
    ]
    db.add_all(payouts)
    await db.flush()
    return len(payouts)


async def add_adjustment(db: AsyncSession, *, values: dict[str, Any], author: str) -> LedgerLineRow:
    """The adjustment line, inserted in the ledger's turn (held on if the caller took it to
    check the period's close)."""
    await turn.take(db)
    row = LedgerLineRow(
        rep_id=values["rep_id"],
        period=values["period"],
        posted_period=values["period"],
        kind=Kind.ADJUSTMENT.value,
        rule="admin",
        deal_id=values.get("deal_id") or "",
        booking=0,
        role="",
        amount=values["amount"],
        currency=values["currency"],
        trace={
            "adjustment": {
                "amount": str(values["amount"]),
                "reason": values["reason"],
                "author": author,
            }
        },
        cause="admin",
        reason=values["reason"],
        author=author,
    )
    db.add(row)
    await db.flush()
    return row


async def first_open_after(db: AsyncSession, *, period: str) -> str:
    closed = await db.scalars(
        select(PeriodCloseRow.period).where(PeriodCloseRow.closed_at.is_not(None))
    )
    return first_open(period, set(closed))


async def plan_lengths_over(db: AsyncSession, *, period: Period) -> set[str]:
    """The period lengths of the plan versions in force over `period` for any rep assigned
    during it: each version from its `effective_from` until the plan's next version."""
    assigned = select(AssignmentRow.plan_id).where(
        AssignmentRow.start < period.end,
        or_(AssignmentRow.end.is_(None), AssignmentRow.end > period.start),
    )
    rows = await db.scalars(
        select(PlanVersionRow)
        .where(PlanVersionRow.plan_id.in_(assigned), PlanVersionRow.effective_from < period.end)
        .order_by(PlanVersionRow.plan_id, PlanVersionRow.effective_from.desc())
    )
    lengths: set[str] = set()
    covered: set[str] = set()
    for row in rows:
        if row.plan_id in covered:
            continue
        lengths.add(PlanDocument.model_validate(row.document).period.value)
        # Versions come latest first: one in force from the period's start on hides the
        # older ones.
        if row.effective_from <= period.start:
            covered.add(row.plan_id)
    return lengths
