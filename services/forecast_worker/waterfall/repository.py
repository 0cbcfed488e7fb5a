"""The one query of the waterfall: each candidate deal's versions at `from` and at `to`.

A candidate is a deal whose version valid at either instant has its close date in the
period: that covers every deal that can move the period's pipeline, those closed in the
period by `to` included. The classification itself is pure (`flow.py`), applied per
deal for the deals of a bucket and, as the same rules in SQL over this query, for the
summary (`totals.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    Subquery,
    Text,
    and_,
    func,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
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


def _valid_at_clause(at: datetime) -> ColumnElement[bool]:
    return and_(
        DealVersion.valid_from <= at,
        or_(DealVersion.valid_to.is_(None), DealVersion.valid_to > at),
    )


_COLUMNS = ("status", "close_date", "amount", "currency", "owner_id")


def _version_columns() -> list[Any]:
    return [
        DealVersion.deal_id,
        *(DealVersion.__table__.c[name] for name in _COLUMNS),
        DealVersion.deleted,
    ]


def _in_period_at(at: datetime, start: date, end: date) -> CTE:
    """The versions valid at `at` that close in the period: one close-date range of
    `ix_deal_versions_close_date`, read from the index alone."""
    close_date = DealVersion.__table__.c.close_date
    return (
        select(*_version_columns())
        .where(close_date >= start, close_date < end, _valid_at_clause(at))
        .cte()
    )


def _looked_up(at: datetime, wanted: CTE, found: CTE) -> Select[Any]:
    """The version valid at `at` of each deal in `wanted` but not in `found` (a version
    closing outside the period, or none for a deal that did not exist yet): looked up by
    deal id, for the few candidates whose other side alone is in the period."""
    missing = select(wanted.c.deal_id).except_(select(found.c.deal_id)).subquery("missing")
    # One primary-key lookup per missing deal: a LATERAL subquery kept whole by OFFSET 0
    # (flattened, it is planned as a join with a scan of all history, the planner not
    # knowing how few deals are missing).
    version = (
        select(*_version_columns())
        .where(DealVersion.deal_id == missing.c.deal_id, _valid_at_clause(at))
        .offset(0)
        .lateral("version")
    )
    return select(version).select_from(missing.join(version, true()))


def _side_at(at: datetime, in_period: CTE, other: CTE) -> Subquery:
    """Each candidate's version valid at `at`: the period's own, then the rest."""
    return union_all(select(in_period), _looked_up(at, other, in_period)).subquery()


def candidate_query(
    *, start: date, end: date, at_from: datetime, at_to: datetime, group_by: GroupBy | None
) -> Select[Any]:
    """Both versions of every candidate, one row each: `b_*` the version at `from` (all
    null when the deal did not exist yet), `a_*` the one at `to`, and each side's
    `b_group` / `a_group` (the owner for `rep`, else the owner's team, manager or region
    on that instant's own date; null when ungrouped).

    Each instant's versions in the period come from its close-date range; only a deal in
    the period at one instant alone has its version at the other looked up by id. Matching
    every deal's versions at both instants first, then keeping the candidates, read all of
    history at every request."""
    period_from, period_to = (_in_period_at(at, start, end) for at in (at_from, at_to))
    before = _side_at(at_from, period_from, period_to)
    after = _side_at(at_to, period_to, period_from)
    columns: list[Any] = [
        *(c.label(f"b_{c.name}") for c in before.c),
        *(c.label(f"a_{c.name}") for c in after.c),
    ]
    query = before.join(after, before.c.deal_id == after.c.deal_id, full=True)
    column = _HIERARCHY_COLUMNS.get(group_by or "")
    for prefix, side, at in (("b", before, at_from), ("a", after, at_to)):
        if column is not None:
            hierarchy = assignment_rows(at.date()).subquery()
            query = query.outerjoin(hierarchy, hierarchy.c.rep_id == side.c.owner_id)
            group: Any = hierarchy.c[column]
        elif group_by == "rep":
            group = side.c.owner_id
        else:
            group = null()
        columns.append(type_coerce(group, Text).label(f"{prefix}_group"))
    in_period = [and_(s.c.close_date >= start, s.c.close_date < end) for s in (before, after)]
    return select(*columns).select_from(query).where(or_(*in_period))


async def candidates(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    at_from: datetime,
    at_to: datetime,
    group_by: GroupBy | None,
) -> list[Candidate]:
    """Every candidate with both its sides, ordered by deal id, for the per-deal path."""
    query = candidate_query(start=start, end=end, at_from=at_from, at_to=at_to, group_by=group_by)
    found = query.selected_columns
    ordered = query.order_by(func.coalesce(found.b_deal_id, found.a_deal_id))
    return [_candidate(r._mapping) for r in await session.execute(ordered)]


def _side(row: Any, prefix: str) -> Side | None:
    if row[f"{prefix}_deal_id"] is None:
        return None
    point = DealPoint(
        status=row[f"{prefix}_status"],
        close_date=row[f"{prefix}_close_date"],
        amount=row[f"{prefix}_amount"] if row[f"{prefix}_amount"] is not None else Decimal(0),
        deleted=row[f"{prefix}_deleted"],
    )
    return Side(point, row[f"{prefix}_currency"], row[f"{prefix}_group"])


def _candidate(row: Any) -> Candidate:
    return Candidate(
        deal_id=row["b_deal_id"] or row["a_deal_id"],
        before=_side(row, "b"),
        after=_side(row, "a"),
    )
