"""The roll-up's one query: every deal of the period and every quota inside it, summed per
(group, currency) in the database.

The stage table goes in as parallel arrays (unnested into a relation and joined), the
hierarchy as `assignment_rows(day)` (the rep's team, manager and region valid on the day),
so a request costs one statement however many deals there are. Deals and quotas meet in a
UNION ALL before one GROUP BY: a group with a quota and no deal, or deals and no quota, is
a row all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Numeric,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.repository import as_of_clause
from services.forecast_worker.hierarchy.models import Team
from services.forecast_worker.hierarchy.repository import assignment_rows, valid_on
from services.forecast_worker.models import Deal, DealVersion
from services.forecast_worker.quotas.models import Quota
from services.forecast_worker.quotas.repository import quotas_as_of
from services.forecast_worker.rollup.figures import ZERO, GroupSums
from services.forecast_worker.rollup.grouping import GroupBy

FORECAST_CATEGORIES = ("commit", "best_case", "pipeline", "omitted")
"""The categories an open deal is summed under (`closed` is for closed stages)."""
_MONEY = ("closed_won", *FORECAST_CATEGORIES, "weighted", "unmapped")
_COUNTS = ("open_count", "unmapped_count")


@dataclass(frozen=True)
class GroupRow:
    group: str | None
    currency: str | None
    sums: GroupSums


def _stage_relation(stages: StageTable) -> Any:
    """The stage rules as a relation (pipeline, stage, category, probability), both names
    in lower case, as the query compares them with the deal's (`StageTable` matches without
    regard to case too)."""
    rules = list(stages.rules.values())
    arrays = {
        "pipelines": ([rule.pipeline.lower() for rule in rules], Text),
        "stages": ([rule.stage.lower() for rule in rules], Text),
        "categories": ([rule.forecast_category for rule in rules], Text),
        "probabilities": ([rule.probability for rule in rules], Numeric),
    }
    return (
        func.unnest(
            *(
                bindparam(name, value=values, type_=ARRAY(kind))
                for name, (values, kind) in arrays.items()
            )
        )
        .table_valued("pipeline", "stage", "category", "probability")
        .render_derived(name="rules")
    )


def _deal_rows(
    stages: StageTable, group_by: GroupBy, start: date, end: date, day: date, as_of: datetime | None
) -> Select[Any]:
    """The deals of the period, first summed per (owner, currency, status, stage, pipeline,
    own category) so that the stage rules and the hierarchy are joined to a few thousand
    rows rather than to every deal, each with its contribution to each sum."""
    model = Deal if as_of is None else DealVersion
    deal = model.__table__.c
    keys = [deal[name] for name in ("owner_id", "currency", "status", "stage", "pipeline")]
    query = (
        select(
            *keys,
            deal.forecast_category,
            func.sum(func.coalesce(deal.amount, 0)).label("amount"),
            func.count().label("deals"),
        )
        .where(deal.deleted.is_(False), deal.close_date >= start, deal.close_date < end)
        .group_by(*keys, deal.forecast_category)
    )
    if as_of is not None:
        query = query.where(as_of_clause(as_of))
    d = query.subquery("d")
    rules = _stage_relation(stages)
    people = assignment_rows(day).subquery("h")
    pipeline = func.lower(func.coalesce(d.c.pipeline, literal(stages.default_pipeline, Text)))
    category = func.coalesce(d.c.forecast_category, rules.c.category)
    amount = d.c.amount
    is_open = d.c.status == "open"
    mapped = and_(is_open, category.is_not(None))
    unmapped = and_(is_open, category.is_(None))

    def money(when: ColumnElement[bool], value: Any = amount) -> Any:
        return case((when, value), else_=0)

    groups = {
        "rep": d.c.owner_id,
        "team": people.c.team_id,
        "manager": people.c.manager_id,
        "region": people.c.region,
    }
    probability = func.coalesce(cast(rules.c.probability, Numeric), 0)
    return (
        select(
            groups[group_by].label("grp"),
            d.c.currency.label("currency"),
            money(d.c.status == "won").label("closed_won"),
            *(money(and_(is_open, category == c)).label(c) for c in FORECAST_CATEGORIES),
            money(mapped, amount * probability * Decimal("0.01")).label("weighted"),
            money(unmapped).label("unmapped"),
            money(mapped, d.c.deals).label("open_count"),
            money(unmapped, d.c.deals).label("unmapped_count"),
            cast(null(), Numeric).label("quota"),
        )
        .select_from(d)
        .outerjoin(
            rules,
            and_(rules.c.pipeline == pipeline, rules.c.stage == func.lower(d.c.stage)),
        )
        .outerjoin(people, people.c.rep_id == d.c.owner_id)
    )


def _quota_rows(
    group_by: GroupBy, start: date, last: date, day: date, as_of: datetime | None
) -> Select[Any]:
    """One row per quota set inside the period, under its rep or team, or its team's
    manager or region on the day; as of an instant, each quota as its latest event up to
    then set it (a quota revised later keeps the amount it had then)."""
    q: Any = Quota.__table__ if as_of is None else quotas_as_of(as_of)
    zeros = [literal(0).label(name) for name in (*_MONEY, *_COUNTS)]
    inside = and_(q.c.period_start >= start, q.c.period_end <= last)
    if group_by == "rep":
        owner: Any = q.c.rep_id
        query = select(owner, q.c.currency, *zeros, q.c.amount).where(owner.is_not(None))
    elif group_by == "team":
        owner = q.c.team_id
        query = select(owner, q.c.currency, *zeros, q.c.amount).where(owner.is_not(None))
    else:
        owner = Team.manager_id if group_by == "manager" else Team.region
        query = select(owner, q.c.currency, *zeros, q.c.amount).join(
            Team, and_(Team.team_id == q.c.team_id, valid_on(Team, literal(day)))
        )
    return query.where(inside)


def _money(value: Decimal | None) -> Decimal:
    return ZERO if value is None else Decimal(value)


async def group_sums(
    session: AsyncSession,
    *,
    stages: StageTable,
    group_by: GroupBy,
    start: date,
    end: date,
    day: date,
    as_of: datetime | None,
) -> list[GroupRow]:
    """The sums per (group, currency) of the deals closing in [start, end) as they stood
    at `as_of` (now when None), grouped by the hierarchy of `day`, with the quotas set
    inside the period; ordered by group then currency, the null group last."""
    last = date.fromordinal(end.toordinal() - 1)
    both = union_all(
        _deal_rows(stages, group_by, start, end, day, as_of),
        _quota_rows(group_by, start, last, day, as_of),
    ).subquery("u")
    query = (
        select(
            both.c.grp,
            both.c.currency,
            *(func.sum(both.c[name]).label(name) for name in (*_MONEY, *_COUNTS)),
            func.sum(both.c.quota).label("quota"),
        )
        .group_by(both.c.grp, both.c.currency)
        .order_by(both.c.grp.asc().nulls_last(), both.c.currency.asc().nulls_last())
    )
    rows = await session.execute(query)
    return [
        GroupRow(
            group=r.grp,
            currency=r.currency,
            sums=GroupSums(
                closed_won=_money(r.closed_won),
                commit=_money(r.commit),
                best_case=_money(r.best_case),
                pipeline=_money(r.pipeline),
                omitted=_money(r.omitted),
                weighted=_money(r.weighted),
                open_count=int(r.open_count or 0),
                quota=r.quota,
                unmapped=_money(r.unmapped),
                unmapped_count=int(r.unmapped_count or 0),
            ),
        )
        for r in rows
    ]
