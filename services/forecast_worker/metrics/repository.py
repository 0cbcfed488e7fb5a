"""All SQL of the pipeline metrics. Functions take a session, then keyword arguments.

Every deal is grouped by its owner's hierarchy on the day that matters for the figure:
its close date for outcomes and stage paths, its creation date for created pipeline,
today for the open count, so a rep who moved team does not restate past results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Date,
    Double,
    FromClause,
    Select,
    and_,
    cast,
    extract,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy import Text as TextType
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.forecast_worker.hierarchy.models import RepAssignment, Team
from services.forecast_worker.hierarchy.repository import valid_on
from services.forecast_worker.metrics.figures import Middle, OutcomeTotals, StageTotals
from services.forecast_worker.models import Deal, DealVersion
from services.forecast_worker.rollup.grouping import GroupKey

GroupBy = Literal["rep", "team", "manager", "region"]
_GROUP_COLUMNS = {"team": "team_id", "manager": "manager_id", "region": "region"}

Key = GroupKey
"""A group and a currency."""

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


def _steps(columns: Sequence[ColumnElement[Any]], source: FromClause) -> Select[Any]:
    """The versions with a stage in `source`, each with the stage of the deal's version
    before it (`previous`): a version whose stage differs from it starts a visit."""
    return (
        select(
            *columns,
            _version.deal_id,
            _version.version,
            _version.stage,
            _version.valid_from,
            func.lag(_version.stage)
            .over(partition_by=_version.deal_id, order_by=_version.version)
            .label("previous"),
        )
        .select_from(source)
        .where(_version.stage.is_not(None))
    )


async def stage_paths(
    session: AsyncSession, *, start: date, end: date
) -> dict[str, list[tuple[str, datetime]]]:
    """{deal_id: [(stage, entered at), ...]} in version order, for the same closed deals.

    Versions that stay in the stage of the one before are left out (as `figures` merges
    a run of visits to one stage into its first, and a stage's first appearance is kept):
    a deal has many more versions than stage changes, and each row costs Python time."""
    versions = (
        _steps([], DealVersion.__table__.join(Deal.__table__, _version.deal_id == _deal.deal_id))
        .where(_closed_filter(start, end))
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


def _middle(value: ColumnElement[Any]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The lower and upper middle of `value` over a group (`figures.middle`): the first
    value at or past half the sorted group, from either end; nulls are left out."""
    return (
        func.percentile_disc(0.5).within_group(value),
        func.percentile_disc(0.5).within_group(value.desc()),
    )


def _both(low: Any, high: Any) -> Middle | None:
    return None if low is None else (low, high)


async def outcome_totals(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy | None
) -> dict[Key, OutcomeTotals]:
    """`figures.outcome_totals` of the closed deals of `closed_deals`, per group and
    currency, summed where they are rather than shipped row by row."""
    won = _deal.status == "won"
    amount = func.coalesce(_deal.amount, 0)
    cycle = _deal.close_date - cast(func.timezone("UTC", _deal.created_at), Date)
    query = _grouped(
        [
            _deal.currency,
            func.count().filter(won),
            func.count().filter(~won),
            func.coalesce(func.sum(amount).filter(won), 0),
            func.coalesce(func.sum(amount).filter(~won), 0),
            func.count(cycle),
            func.coalesce(func.sum(cycle), 0),
            *_middle(cycle),
        ],
        group_by,
        _deal.owner_id,
        _deal.close_date,
        Deal.__table__,
    )
    rows = await session.execute(
        query.where(_closed_filter(start, end)).group_by("group_key", _deal.currency)
    )
    return {
        (r[0], r[1]): OutcomeTotals(
            r[2], r[3], Decimal(r[4]), Decimal(r[5]), r[6], int(r[7]), _both(r[8], r[9])
        )
        for r in rows
    }


async def stage_totals(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    group_by: GroupBy | None,
    order: Sequence[str],
) -> dict[Key, dict[str, StageTotals]]:
    """`figures.stage_totals` per group and currency for the stage paths of `stage_paths`,
    with window functions over each deal's versions in version order: a visit is a
    version whose stage differs from the one before (nulls left out), it ends where the
    next visit starts, its deal entered the stage at its first visit to it, and advanced
    from it when a visit after that one has a later stage of `order`.

    Stages are grouped by their place in `order` and groups compared byte-wise: sorting
    ~1.5 M visits a year by three texts in the database's collation was the slowest step."""
    closed = (
        _grouped(
            [_deal.deal_id, _deal.currency],
            group_by,
            _deal.owner_id,
            _deal.close_date,
            Deal.__table__,
        )
        .where(_closed_filter(start, end))
        .subquery("closed")
    )
    steps = _steps(
        [closed.c.group_key, closed.c.currency],
        closed.join(DealVersion.__table__, _version.deal_id == closed.c.deal_id),
    ).subquery("steps")
    rank = func.array_position(literal(list(order), ARRAY(TextType)), steps.c.stage)
    visits = (
        select(
            steps.c.group_key,
            steps.c.currency,
            steps.c.deal_id,
            steps.c.version,
            steps.c.valid_from,
            rank.label("rank"),
            func.lead(steps.c.valid_from)
            .over(partition_by=steps.c.deal_id, order_by=steps.c.version)
            .label("left_at"),
        )
        .where(steps.c.previous.is_distinct_from(steps.c.stage))
        .subquery("visits")
    )
    deal, version = visits.c.deal_id, visits.c.version
    seconds = extract("epoch", visits.c.left_at) - extract("epoch", visits.c.valid_from)
    timed = select(
        visits.c.group_key,
        visits.c.currency,
        visits.c.rank,
        func.max(visits.c.rank)
        .over(partition_by=deal, order_by=version, rows=(1, None))
        .label("later_rank"),
        (cast(seconds, Double) / literal(86400, Double)).label("days"),
        func.count()
        .over(partition_by=(deal, visits.c.rank), order_by=version, rows=(None, 0))
        .label("nth"),
    ).subquery("timed")
    first = timed.c.nth == 1
    keys = (timed.c.group_key.collate("C"), timed.c.currency.collate("C"), timed.c.rank)
    rows = await session.execute(
        select(
            *keys,
            func.count().filter(first),
            func.count().filter(first, timed.c.later_rank > timed.c.rank),
            *_middle(timed.c.days),
        )
        .where(timed.c.rank.is_not(None))
        .group_by(*keys)
    )
    totals: dict[Key, dict[str, StageTotals]] = defaultdict(dict)
    for r in rows:
        totals[(r[0], r[1])][order[r[2] - 1]] = StageTotals(r[3], r[4], _both(r[5], r[6]))
    return totals


async def first_seen_stages(session: AsyncSession, *, start: date, end: date) -> list[str]:
    """The stages of the closed deals' paths as `report.stage_order` orders them without a
    configuration: deal by deal in id order (compared as code points, as Python does),
    each path in version order."""
    place = (_version.deal_id.collate("C"), _version.version)
    first = (
        select(
            _version.stage,
            _version.deal_id,
            _version.version,
            func.row_number().over(partition_by=_version.stage, order_by=place).label("nth"),
        )
        .select_from(DealVersion.__table__.join(Deal.__table__, _version.deal_id == _deal.deal_id))
        .where(_closed_filter(start, end), _version.stage.is_not(None))
        .subquery("first")
    )
    rows = await session.execute(
        select(first.c.stage)
        .where(first.c.nth == 1)
        .order_by(first.c.deal_id.collate("C"), first.c.version)
    )
    return list(rows.scalars())
