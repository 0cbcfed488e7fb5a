"""All SQL of the pipeline metrics. Functions take a session, then keyword arguments.

Every deal is grouped by its owner's hierarchy on the day that matters for the figure:
its close date for outcomes and stage paths, its creation date for created pipeline,
today for the open count, so a rep who moved team does not restate past results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Date,
    FromClause,
    Select,
    and_,
    cast,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.forecast_worker.hierarchy.models import RepAssignment, Team
from services.forecast_worker.hierarchy.repository import valid_on
from services.forecast_worker.models import Deal, DealVersion

GroupBy = Literal["rep", "team", "manager", "region"]
_GROUP_COLUMNS = {"team": "team_id", "manager": "manager_id", "region": "region"}

_deal = Deal.__table__.c
_version = DealVersion.__table__.c


@dataclass(frozen=True)
class ClosedRow:
    deal_id: str
    group: str | None
    currency: str | None
    won: bool
    amount: Decimal
    created_at: datetime | None
    close_date: date | None


@dataclass(frozen=True)
class GroupCount:
    group: str | None
    currency: str | None
    count: int
    amount: Decimal


def _grouped(
    columns: Sequence[ColumnElement[Any]],
    group_by: GroupBy | None,
    owner: ColumnElement[Any],
    day: ColumnElement[date],
    source: FromClause,
) -> Select[Any]:
    """`columns` of `source` with the group of each row as `group_key`: null when
    everything is one group, the owner for `rep`, else the owner's team, manager or region
    on `day`, joined as `assignment_rows(day)` would give them (one rep row valid that day,
    its team's row valid that day) but as plain outer joins: a lateral subquery per row
    costs a lookup per deal, hundreds of thousands of them for a year."""
    if group_by is None:
        return select(null().label("group_key"), *columns).select_from(source)
    if group_by == "rep":
        return select(owner.label("group_key"), *columns).select_from(source)
    rep, team = aliased(RepAssignment), aliased(Team)
    group = rep.team_id if group_by == "team" else getattr(team, _GROUP_COLUMNS[group_by])
    return (
        select(group.label("group_key"), *columns)
        .select_from(source)
        .outerjoin(rep, and_(rep.rep_id == owner, valid_on(rep, day)))
        .outerjoin(team, and_(team.team_id == rep.team_id, valid_on(team, day)))
    )


def _closed_filter(start: date, end: date) -> ColumnElement[bool]:
    return and_(
        _deal.deleted.is_(False),
        _deal.status.in_(("won", "lost")),
        _deal.close_date.between(start, end),
    )


async def closed_deals(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy | None
) -> list[ClosedRow]:
    """The deals whose current state is won or lost with a close date in [start, end]."""
    query = _grouped(
        [
            _deal.deal_id,
            _deal.currency,
            _deal.status,
            func.coalesce(_deal.amount, 0).label("amount"),
            _deal.created_at,
            _deal.close_date,
        ],
        group_by,
        _deal.owner_id,
        _deal.close_date,
        Deal.__table__,
    )
    rows = await session.execute(query.where(_closed_filter(start, end)))
    return [
        ClosedRow(
            deal_id=r.deal_id,
            group=r.group_key,
            currency=r.currency,
            won=r.status == "won",
            amount=Decimal(r.amount),
            created_at=r.created_at,
            close_date=r.close_date,
        )
        for r in rows
    ]


async def stage_paths(
    session: AsyncSession, *, start: date, end: date
) -> dict[str, list[tuple[str, datetime]]]:
    """{deal_id: [(stage, entered at), ...]} in version order, for the same closed deals.

    Versions that stay in the stage of the one before are left out (as `figures` merges
    a run of visits to one stage into its first, and a stage's first appearance is kept):
    a deal has many more versions than stage changes, and each row costs Python time."""
    versions = (
        select(
            _version.deal_id,
            _version.stage,
            _version.valid_from,
            _version.version,
            func.lag(_version.stage)
            .over(partition_by=_version.deal_id, order_by=_version.version)
            .label("previous"),
        )
        .select_from(DealVersion.__table__.join(Deal.__table__, _version.deal_id == _deal.deal_id))
        .where(_closed_filter(start, end), _version.stage.is_not(None))
        .subquery("versions")
    )
    rows = await session.execute(
        select(versions.c.deal_id, versions.c.stage, versions.c.valid_from)
        .where(versions.c.previous.is_distinct_from(versions.c.stage))
        .order_by(versions.c.deal_id, versions.c.version)
    )
    paths: dict[str, list[tuple[str, datetime]]] = {}
    for r in rows:
        paths.setdefault(r.deal_id, []).append((r.stage, r.valid_from))
    return paths


async def open_counts(
    session: AsyncSession, *, today: date, group_by: GroupBy | None
) -> list[GroupCount]:
    """Open deals now, per group and currency, grouped by the hierarchy of today."""
    query = _grouped(
        [_deal.currency, func.count().label("n"), func.coalesce(func.sum(_deal.amount), 0)],
        group_by,
        _deal.owner_id,
        literal(today, Date),
        Deal.__table__,
    )
    rows = await session.execute(
        query.where(_deal.deleted.is_(False), _deal.status == "open").group_by(
            "group_key", _deal.currency
        )
    )
    return [GroupCount(r[0], r[1], r[2], Decimal(r[3])) for r in rows]


async def created_pipeline(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy | None
) -> list[GroupCount]:
    """Deals created in [start, end] (not deleted now) and the sum of their amounts at
    creation (their first version, looked up per deal created in the range rather than
    picked for every deal of history), per group of the owner on the creation day."""
    first = (
        select(_version.owner_id, _version.currency, _version.amount)
        .where(_version.deal_id == _deal.deal_id)
        .order_by(_version.version)
        .limit(1)
        .lateral("first_version")
    )
    created_on = cast(func.timezone("UTC", _deal.created_at), Date)
    query = _grouped(
        [first.c.currency, func.count().label("n"), func.coalesce(func.sum(first.c.amount), 0)],
        group_by,
        first.c.owner_id,
        created_on,
        Deal.__table__.join(first, true()),
    )
    rows = await session.execute(
        query.where(_deal.deleted.is_(False), created_on.between(start, end)).group_by(
            "group_key", first.c.currency
        )
    )
    return [GroupCount(r[0], r[1], r[2], Decimal(r[3])) for r in rows]
