"""The one query of the waterfall: each candidate deal's versions at `from` and at `to`.

A candidate is a deal whose version valid at either instant has its close date in the
period: that covers every deal that can move the period's pipeline, those closed in the
period by `to` included. The classification itself is pure (`flow.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Subquery, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.hierarchy.repository import assignment_rows
from services.forecast_worker.models import DealVersion
from services.forecast_worker.waterfall.flow import DealPoint

GroupBy = Literal["rep", "team", "manager", "region"]
_HIERARCHY_COLUMNS = {"team": "team_id", "manager": "manager_id", "region": "region"}


@dataclass(frozen=True)
class Side:
    """A deal at one instant: its point for the classification, and where it is counted."""

    point: DealPoint
    currency: str | None
    group: str | None


@dataclass(frozen=True)
class Candidate:
    deal_id: str
    before: Side | None
    after: Side | None


def _valid_at(at: datetime) -> Subquery:
    return (
        select(
            DealVersion.deal_id,
            DealVersion.__table__.c.status,
            DealVersion.__table__.c.close_date,
            DealVersion.__table__.c.amount,
            DealVersion.__table__.c.currency,
            DealVersion.__table__.c.owner_id,
            DealVersion.deleted,
        )
        .where(
            DealVersion.valid_from <= at,
            or_(DealVersion.valid_to.is_(None), DealVersion.valid_to > at),
        )
        .subquery()
    )


async def candidates(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    at_from: datetime,
    at_to: datetime,
    group_by: GroupBy | None,
) -> list[Candidate]:
    """Both versions of every candidate, with each side's group (the owner for `rep`, else
    the owner's team, manager or region on that instant's own date)."""
    before, after = _valid_at(at_from), _valid_at(at_to)
    columns: list[Any] = [
        *(c.label(f"b_{c.name}") for c in before.c),
        *(c.label(f"a_{c.name}") for c in after.c),
    ]
    query = before.join(after, before.c.deal_id == after.c.deal_id, full=True)
    column = _HIERARCHY_COLUMNS.get(group_by or "")
    if column is not None:
        for prefix, side, at in (("b", before, at_from), ("a", after, at_to)):
            hierarchy = assignment_rows(at.date()).subquery()
            query = query.outerjoin(hierarchy, hierarchy.c.rep_id == side.c.owner_id)
            columns.append(hierarchy.c[column].label(f"{prefix}_group"))
    in_period = [and_(s.c.close_date >= start, s.c.close_date < end) for s in (before, after)]
    deal_id = func.coalesce(before.c.deal_id, after.c.deal_id)
    rows = await session.execute(
        select(*columns).select_from(query).where(or_(*in_period)).order_by(deal_id)
    )
    return [_candidate(r._mapping, group_by) for r in rows]


def _side(row: Any, prefix: str, group_by: GroupBy | None) -> Side | None:
    if row[f"{prefix}_deal_id"] is None:
        return None
    point = DealPoint(
        status=row[f"{prefix}_status"],
        close_date=row[f"{prefix}_close_date"],
        amount=row[f"{prefix}_amount"] if row[f"{prefix}_amount"] is not None else Decimal(0),
        deleted=row[f"{prefix}_deleted"],
    )
    if group_by is None:
        group = None
    elif group_by == "rep":
        group = row[f"{prefix}_owner_id"]
    else:
        group = row[f"{prefix}_group"]
    return Side(point, row[f"{prefix}_currency"], group)


def _candidate(row: Any, group_by: GroupBy | None) -> Candidate:
    return Candidate(
        deal_id=row["b_deal_id"] or row["a_deal_id"],
        before=_side(row, "b", group_by),
        after=_side(row, "a", group_by),
    )
