"""All SQL of the pipeline metrics. Functions take a session, then keyword arguments.

Every deal is grouped by its owner's hierarchy on the day that matters for the figure:
its close date for outcomes and stage paths, its creation date for created pipeline,
today for the open count, so a rep who moved team does not restate past results.

Outcomes and open counts are read from the deals; stage paths and created pipeline from
the summary (`summary.models`), which the caller brings up to date first. Stage names are
compared without regard to case, as the roll-up and the stage check compare them: a deal
in `PROPOSE` is in the configured `Propose`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Date,
    Double,
    FromClause,
    Integer,
    Select,
    and_,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    type_coerce,
)
from sqlalchemy import Text as TextType
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import Grouping
from sqlalchemy.sql.selectable import LateralFromClause
from sqlalchemy.types import TypeEngine

from services.forecast_worker.hierarchy.models import RepAssignment, Team
from services.forecast_worker.hierarchy.repository import valid_on
from services.forecast_worker.metrics.figures import Middle, OutcomeTotals, StageTotals
from services.forecast_worker.models import Deal
from services.forecast_worker.rollup.grouping import GroupKey
from services.forecast_worker.summary.models import DealCreation, StageVisit

GroupBy = Literal["rep", "team", "manager", "region"]
_GROUP_COLUMNS = {"team": "team_id", "manager": "manager_id", "region": "region"}

Key = GroupKey
"""A group and a currency."""

_deal = Deal.__table__.c
_visit = StageVisit.__table__.c
_created = DealCreation.__table__.c


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
    costs a lookup per deal, hundreds of thousands of them for a year. By team, the team's
    own row is not joined: the rep's row names the team, and joining the team's row (at most
    one a day, as intervals follow one another) would only cost a hash probe per row."""
    if group_by is None:
        return select(null().label("group_key"), *columns).select_from(source)
    if group_by == "rep":
        return select(owner.label("group_key"), *columns).select_from(source)
    rep, team = aliased(RepAssignment), aliased(Team)
    on_day = and_(rep.rep_id == owner, valid_on(rep, day))
    if group_by == "team":
        return (
            select(rep.team_id.label("group_key"), *columns)
            .select_from(source)
            .outerjoin(rep, on_day)
        )
    return (
        select(getattr(team, _GROUP_COLUMNS[group_by]).label("group_key"), *columns)
        .select_from(source)
        .outerjoin(rep, on_day)
        .outerjoin(team, and_(team.team_id == rep.team_id, valid_on(team, day)))
    )


def _closed_filter(start: date, end: date) -> ColumnElement[bool]:
    return and_(
        _deal.deleted.is_(False),
        _deal.status.in_(("won", "lost")),
        _deal.close_date.between(start, end),
    )


async def open_counts(
    session: AsyncSession, *, today: date, group_by: GroupBy | None
) -> list[GroupCount]:
    """Open deals now, per group and currency, grouped by the hierarchy of today: the
    partial index `ix_deals_open` alone, whose predicate the planner matches only against
    the status written into the statement (a bound one may get a generic plan)."""
    query = _grouped(
        [_deal.currency, func.count().label("n"), func.coalesce(func.sum(_deal.amount), 0)],
        group_by,
        _deal.owner_id,
        literal(today, Date),
        Deal.__table__,
    )
    rows = await session.execute(
        query.where(_deal.deleted.is_(False), _deal.status == literal_column("'open'")).group_by(
            "group_key", _deal.currency
        )
    )
    return [GroupCount(r[0], r[1], r[2], Decimal(r[3])) for r in rows]


async def created_pipeline(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy | None
) -> list[GroupCount]:
    """Deals created in [start, end] (not deleted now) and the sum of their amounts at
    creation (their first version), per group of the owner at creation on the creation
    day: one creation-day range of the summary's `deal_creations`."""
    query = _grouped(
        [_created.currency, func.count().label("n"), func.coalesce(func.sum(_created.amount), 0)],
        group_by,
        _created.owner_id,
        _created.created_on,
        DealCreation.__table__,
    )
    rows = await session.execute(
        query.where(_created.created_on.between(start, end)).group_by(
            "group_key", _created.currency
        )
    )
    return [GroupCount(r[0], r[1], r[2], Decimal(r[3])) for r in rows]


def _both(low: Any, high: Any) -> Middle | None:
    return None if low is None else (low, high)


async def outcome_totals(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy | None
) -> dict[Key, OutcomeTotals]:
    """`figures.outcome_totals` of the deals closed (won or lost, not deleted) in [start,
    end], per group and currency, summed where they are rather than shipped row by row."""
    won = _deal.status == "won"
    amount = func.coalesce(_deal.amount, 0)
    cycle = _deal.close_date - cast(func.timezone("UTC", _deal.created_at), Date)
    grouped = (
        _grouped(
            [
                _deal.currency,
                func.count().filter(won).label("won"),
                func.count().filter(~won).label("lost"),
                func.coalesce(func.sum(amount).filter(won), 0).label("won_amount"),
                func.coalesce(func.sum(amount).filter(~won), 0).label("lost_amount"),
                func.count(cycle).label("cycles"),
                func.coalesce(func.sum(cycle), 0).label("cycle_days"),
                func.array_agg(cycle).filter(cycle.is_not(None)).label("lengths"),
            ],
            group_by,
            _deal.owner_id,
            _deal.close_date,
            Deal.__table__,
        )
        .where(_closed_filter(start, end))
        .group_by("group_key", _deal.currency)
        .subquery("grouped")
    )
    g, lengths = grouped.c, _sorted(grouped.c.lengths, Integer)
    rows = await session.execute(
        select(
            g.group_key,
            g.currency,
            g.won,
            g.lost,
            g.won_amount,
            g.lost_amount,
            g.cycles,
            g.cycle_days,
            *_middles(lengths.c.lengths),
        ).select_from(grouped.join(lengths, true()))
    )
    return {
        (r[0], r[1]): OutcomeTotals(
            r[2], r[3], Decimal(r[4]), Decimal(r[5]), r[6], int(r[7]), _both(r[8], r[9])
        )
        for r in rows
    }


def _sorted(lengths: ColumnElement[Any], kind: type[TypeEngine[Any]]) -> LateralFromClause:
    """The array `lengths` (of `kind`) sorted, once per group: a lateral subquery, as an
    expression would be evaluated once per use.

    A group's lengths are collected by a hash aggregate (in parallel workers where the
    database has them) and each group's array sorted on its own, which took half the CPU of
    `percentile_disc`, whose groups must first be sorted by key (~1.5 M stage visits a
    year: benchmarks/RESULTS.md, "Metrics from a summary")."""
    each = func.unnest(lengths).table_valued("length").render_derived("each")
    ordered = func.array_agg(aggregate_order_by(each.c.length, each.c.length))
    return (
        select(type_coerce(ordered, ARRAY(kind)).label("lengths"))
        .select_from(each)
        .lateral("sorted")
    )


def _middles(lengths: ColumnElement[Any]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The lower and upper middle of a sorted array (1-based), as `figures.middle` picks
    them: null for an empty or null array."""
    count = func.cardinality(lengths, type_=Integer)
    return lengths[(count + 1) // 2], lengths[count // 2 + 1]


async def stage_totals(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    group_by: GroupBy | None,
    order: Sequence[str],
) -> dict[Key, dict[str, StageTotals]]:
    """`figures.stage_totals` per group and currency, from the summary's stage visits of
    the deals closed in [start, end]: per stage of `order` (names compared without regard
    to case), the deals whose first visit to it is there (entered), those of them with a
    later visit to a stage after it in `order` (advanced: the visit's `later_stages`, in
    lower case, overlap the stages after it), and the two middle lengths of its ended
    visits (`_sorted`). Of stages of `order` that differ only by case, the first counts.

    A visit's place in the order is `array_position` of its lower-case stage in the
    lower-case order (null: not a stage of the order) and the stages after it a slice of
    that array (parenthesised: a bound array is subscripted only so), rather than a join
    with a list of the stages: the planner estimates that join's rows from no statistics
    (1 % of the year's ~1.5 M visits), sorts them to group them and spills the sort to
    disk; with the expression it hashes them into their groups (benchmarks/RESULTS.md,
    "Issue 8 metrics for a year, third pass")."""
    firsts: dict[str, str] = {}
    for stage in order:
        firsts.setdefault(stage.lower(), stage)
    ordered = list(firsts.values())
    if not ordered:
        return {}
    keys = literal([stage.lower() for stage in ordered], ARRAY(TextType))
    rank = func.array_position(keys, func.lower(_visit.stage), type_=Integer)
    after = Grouping(keys)[rank + 1 : len(ordered)]
    days, first = _visit.days, _visit.first_visit
    grouped = (
        _grouped(
            [
                _visit.currency,
                rank.label("rank"),
                func.count().filter(first).label("entered"),
                func.count().filter(first, _visit.later_stages.overlap(after)).label("advanced"),
                func.array_agg(days).filter(days.is_not(None)).label("lengths"),
            ],
            group_by,
            _visit.owner_id,
            _visit.close_date,
            StageVisit.__table__,
        )
        .where(_visit.close_date.between(start, end), rank.is_not(None))
        .group_by("group_key", _visit.currency, "rank")
        .subquery("grouped")
    )
    g, lengths = grouped.c, _sorted(grouped.c.lengths, Double)
    rows = await session.execute(
        select(
            g.group_key, g.currency, g.rank, g.entered, g.advanced, *_middles(lengths.c.lengths)
        ).select_from(grouped.join(lengths, true()))
    )
    totals: dict[Key, dict[str, StageTotals]] = defaultdict(dict)
    for r in rows:
        totals[(r[0], r[1])][ordered[r[2] - 1]] = StageTotals(r[3], r[4], _both(r[5], r[6]))
    return totals


async def visit_middles(session: AsyncSession, *, start: date, end: date) -> dict[str, Middle]:
    """{stage in lower case: the two middle lengths of its ended visits} over the deals
    closed in [start, end], every stage together whatever the group and however it was
    spelled: the inspection's medians."""
    days, stage = _visit.days, func.lower(_visit.stage)
    grouped = (
        select(stage.label("stage"), func.array_agg(days).label("lengths"))
        .where(_visit.close_date.between(start, end), days.is_not(None))
        .group_by(stage)
        .subquery("grouped")
    )
    lengths = _sorted(grouped.c.lengths, Double)
    rows = await session.execute(
        select(grouped.c.stage, *_middles(lengths.c.lengths)).select_from(
            grouped.join(lengths, true())
        )
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def first_seen_stages(session: AsyncSession, *, start: date, end: date) -> list[str]:
    """The stages of the closed deals' visits in the order first seen without a
    configuration: deal by deal in id order (compared as code points, as Python does),
    each deal's visits in order; a stage spelled in several letter cases once, as first
    spelled."""
    place = (_visit.deal_id.collate("C"), _visit.visit)
    first = (
        select(
            _visit.stage,
            _visit.deal_id,
            _visit.visit,
            func.row_number()
            .over(partition_by=func.lower(_visit.stage), order_by=place)
            .label("nth"),
        )
        .where(_visit.close_date.between(start, end))
        .subquery("first")
    )
    rows = await session.execute(
        select(first.c.stage)
        .where(first.c.nth == 1)
        .order_by(first.c.deal_id.collate("C"), first.c.visit)
    )
    return list(rows.scalars())
