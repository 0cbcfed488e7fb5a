"""All SQL of the projection: a few set-based statements, however many deals and periods.

- `past_cohorts`: for every past period at once (a VALUES relation of periods joined to
  `deal_versions`), the deals open at the same point of that period, summed per (group,
  currency, stage, due), beside what of exactly those deals was won, with a close date in
  the period, by its end (the deal's version valid at the period's end).
- `past_new_won`: per past period, what was won in it by deals that did not exist yet at
  that point (no version valid from before it).
- `open_pipeline`: the open deals now, or as of an instant, summed the same way.

Each first sums per owner and then joins the hierarchy of the period's day to those few
rows, as the roll-up does, so the hierarchy is not looked up once per deal. Money is never
added across currencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    Select,
    and_,
    case,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.hierarchy.models import RepAssignment
from services.forecast_worker.hierarchy.repository import assignment_rows
from services.forecast_worker.models import Deal, DealVersion
from services.forecast_worker.rollup.repository import GroupBy

Due = Literal["in_period", "overdue", "later", "undated"]
"""Where an open deal's close date lay against the period: in it, before its start (still
open: overdue), after its end, or not set at all."""
_GROUP_COLUMNS = {"team": "team_id", "manager": "manager_id", "region": "region"}


@dataclass(frozen=True)
class PastWindow:
    """One past period as the history query sees it: its dates, the instant at the same
    point of it, and the hierarchy days its cohort and its new business are grouped by."""

    index: int
    start: date
    end: date
    at: datetime
    closed_at: datetime
    """The period's end as an instant: the deal versions valid then say what was won."""
    day: date
    end_day: date


@dataclass(frozen=True)
class CohortRow:
    index: int
    group: str | None
    currency: str | None
    stage: str | None
    due: Due
    open_amount: Decimal
    won_amount: Decimal


@dataclass(frozen=True)
class NewWonRow:
    index: int
    group: str | None
    currency: str | None
    amount: Decimal


@dataclass(frozen=True)
class PipelineRow:
    group: str | None
    currency: str | None
    stage: str | None
    due: Due
    amount: Decimal


def _valid_at(table: Any, at: Any) -> Any:
    """The version of a deal in force at `at` (a value or a column), as `as_of_clause`."""
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def _won_in_period(w: Any, p: Any) -> Any:
    """A deal version won, not deleted, with a close date in the window's period."""
    return and_(
        w.c.deleted.is_(False),
        w.c.status == "won",
        w.c.close_date >= p.c.start,
        w.c.close_date < p.c.end,
    )


def _due(close_date: Any, start: Any, end: Any) -> Any:
    """Constants as SQL text, not parameters: the expression is grouped by, and Postgres
    matches a GROUP BY expression to the select list's only when they are the same text."""
    return case(
        (close_date.is_(None), literal_column("'undated'")),
        (close_date < start, literal_column("'overdue'")),
        (close_date >= end, literal_column("'later'")),
        else_=literal_column("'in_period'"),
    )


def _windows(windows: Sequence[PastWindow]) -> Any:
    return values(
        column("k", Integer),
        column("start", Date),
        column("end", Date),
        column("at", DateTime(timezone=True)),
        column("closed_at", DateTime(timezone=True)),
        column("day", Date),
        column("end_day", Date),
        name="periods",
    ).data([(w.index, w.start, w.end, w.at, w.closed_at, w.day, w.end_day) for w in windows])


def _by_group(per_owner: Any, group_by: GroupBy, keys: Sequence[str], sums: Sequence[str]) -> Any:
    """Per-owner sums regrouped by the owner's group on the row's `day`."""
    if group_by == "rep":
        group: Any = per_owner.c.owner_id
        hierarchy = None
    else:
        hierarchy = (
            assignment_rows(per_owner.c.day)
            .where(RepAssignment.rep_id == per_owner.c.owner_id)
            .lateral("owner_on_day")
        )
        group = hierarchy.c[_GROUP_COLUMNS[group_by]]
    query = select(
        group.label("grp"),
        *(per_owner.c[k] for k in keys),
        *(func.sum(per_owner.c[s]).label(s) for s in sums),
    ).select_from(per_owner)
    if hierarchy is not None:
        query = query.outerjoin(hierarchy, true())
    return query.group_by(group, *(per_owner.c[k] for k in keys))


async def first_version_at(session: AsyncSession) -> datetime | None:
    """When the earliest deal version took effect: no history exists before it."""
    found: datetime | None = await session.scalar(select(func.min(DealVersion.valid_from)))
    return found


async def past_cohorts(
    session: AsyncSession, *, windows: Sequence[PastWindow], group_by: GroupBy
) -> list[CohortRow]:
    if not windows:
        return []
    p = _windows(windows)
    v = DealVersion.__table__.alias("v")
    w = DealVersion.__table__.alias("w")
    won = and_(w.c.deal_id == v.c.deal_id, _valid_at(w, p.c.closed_at), _won_in_period(w, p))
    due = _due(v.c.close_date, p.c.start, p.c.end).label("due")
    keys = (p.c.k, p.c.day, v.c.owner_id, v.c.currency, v.c.stage, due)
    per_owner = (
        select(
            *keys,
            func.sum(func.coalesce(v.c.amount, 0)).label("open_amount"),
            func.sum(func.coalesce(w.c.amount, 0)).label("won_amount"),
        )
        .select_from(p.join(v, _valid_at(v, p.c.at)).outerjoin(w, won))
        .where(v.c.deleted.is_(False), v.c.status == "open")
        .group_by(*keys)
        .subquery("per_owner")
    )
    query = _by_group(
        per_owner, group_by, ("k", "currency", "stage", "due"), ("open_amount", "won_amount")
    )
    return [
        CohortRow(
            r.k, r.grp, r.currency, r.stage, r.due, Decimal(r.open_amount), Decimal(r.won_amount)
        )
        for r in await session.execute(query)
    ]


async def past_new_won(
    session: AsyncSession, *, windows: Sequence[PastWindow], group_by: GroupBy
) -> list[NewWonRow]:
    if not windows:
        return []
    p = _windows(windows)
    w = DealVersion.__table__.alias("w")
    earlier = DealVersion.__table__.alias("earlier")
    existed = exists().where(earlier.c.deal_id == w.c.deal_id, earlier.c.valid_from <= p.c.at)
    keys = (p.c.k, p.c.end_day.label("day"), w.c.owner_id, w.c.currency)
    per_owner = (
        select(*keys, func.sum(func.coalesce(w.c.amount, 0)).label("amount"))
        .select_from(p.join(w, _valid_at(w, p.c.closed_at)))
        .where(_won_in_period(w, p), ~existed)
        .group_by(*keys)
        .subquery("per_owner")
    )
    query = _by_group(per_owner, group_by, ("k", "currency"), ("amount",))
    return [
        NewWonRow(r.k, r.grp, r.currency, Decimal(r.amount)) for r in await session.execute(query)
    ]


async def open_pipeline(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    day: date,
    as_of: datetime | None,
    group_by: GroupBy,
) -> list[PipelineRow]:
    """The open deals now (as_of None: the current rows, as the live roll-up) or as of an
    instant (the versions valid then), whatever their close date, by where it lies."""
    table: Any = (Deal if as_of is None else DealVersion).__table__
    deals: Select[Any] = select(
        table.c.owner_id,
        table.c.currency,
        table.c.stage,
        _due(table.c.close_date, literal(start, Date), literal(end, Date)).label("due"),
        func.coalesce(table.c.amount, 0).label("amount"),
    ).where(table.c.deleted.is_(False), table.c.status == "open")
    if as_of is not None:
        deals = deals.where(_valid_at(table, as_of))
    d = deals.subquery("d")
    keys = (d.c.owner_id, d.c.currency, d.c.stage, d.c.due)
    per_owner = select(
        literal(day, Date).label("day"), *keys, func.sum(d.c.amount).label("amount")
    ).group_by(*keys)
    query = _by_group(
        per_owner.subquery("per_owner"), group_by, ("currency", "stage", "due"), ("amount",)
    )
    return [
        PipelineRow(r.grp, r.currency, r.stage, r.due, Decimal(r.amount))
        for r in await session.execute(query)
    ]
