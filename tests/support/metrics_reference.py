"""The pipeline metrics computed in Python from every closed deal and its stage path:
the reference the SQL totals over the summary (`metrics.repository`, `summary`) are tested
against, and the worked cases of the figures. It reads the deals and their versions
directly (never the summary) and ends in the same `figures.*_from_totals` as the route,
so the ratios, medians and rounding are defined once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.metrics.figures import (
    ZERO,
    Middle,
    Outcomes,
    OutcomeTotals,
    StageFigures,
    StageTotals,
    outcomes_from_totals,
    stage_figures_from_totals,
)
from services.forecast_worker.metrics.report import GroupTotals, rows_from_totals
from services.forecast_worker.metrics.repository import GroupBy, GroupCount, Key, _grouped
from services.forecast_worker.metrics.schemas import MetricsRow
from services.forecast_worker.models import Deal, DealVersion

_deal = Deal.__table__.c
_version = DealVersion.__table__.c


@dataclass(frozen=True)
class ClosedDeal:
    won: bool
    amount: Decimal
    created_at: datetime | None
    close_date: date | None

    @property
    def cycle_days(self) -> int | None:
        if self.created_at is None or self.close_date is None:
            return None
        return (self.close_date - self.created_at.date()).days


def middle(values: Iterable[float]) -> Middle | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]


def outcomes(deals: Iterable[ClosedDeal]) -> Outcomes:
    return outcomes_from_totals(outcome_totals(deals))


def outcome_totals(deals: Iterable[ClosedDeal]) -> OutcomeTotals:
    won_count = lost_count = 0
    won_amount = lost_amount = ZERO
    cycles: list[int] = []
    for deal in deals:
        if deal.won:
            won_count += 1
            won_amount += deal.amount
        else:
            lost_count += 1
            lost_amount += deal.amount
        if deal.cycle_days is not None:
            cycles.append(deal.cycle_days)
    return OutcomeTotals(
        won_count, lost_count, won_amount, lost_amount, len(cycles), sum(cycles), middle(cycles)
    )


@dataclass(frozen=True)
class StageVisit:
    stage: str
    entered_at: datetime


def stage_figures(
    paths: Iterable[Sequence[StageVisit]], order: Sequence[str]
) -> list[StageFigures]:
    """Conversion and median days per stage of `order`, from each deal's stage visits."""
    return stage_figures_from_totals(stage_totals(paths, order), order)


def stage_totals(
    paths: Iterable[Sequence[StageVisit]], order: Sequence[str]
) -> dict[str, StageTotals]:
    """Per stage of `order`, from each deal's stage visits in time order (stage names
    compared without regard to case; consecutive visits to the same stage are one visit;
    stages not in `order` end the visit before them but are not reported)."""
    rank: dict[str, int] = {}
    for i, stage in enumerate(order):
        rank.setdefault(stage.lower(), i)
    entered: dict[str, int] = defaultdict(int)
    advanced: dict[str, int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        visits = _merged(path)
        seen = {v.stage.lower() for v in visits}
        for stage in seen & rank.keys():
            entered[stage] += 1
            first = next(i for i, v in enumerate(visits) if v.stage.lower() == stage)
            later = {v.stage.lower() for v in visits[first + 1 :]}
            if any(rank.get(s, -1) > rank[stage] for s in later):
                advanced[stage] += 1
        for visit, following in pairwise(visits):
            if visit.stage.lower() in rank:
                seconds = (following.entered_at - visit.entered_at).total_seconds()
                durations[visit.stage.lower()].append(seconds / 86400)
    key = {stage: stage.lower() for stage in order}
    return {
        stage: StageTotals(entered[key[stage]], advanced[key[stage]], middle(durations[key[stage]]))
        for stage in order
    }


def _merged(path: Sequence[StageVisit]) -> list[StageVisit]:
    out: list[StageVisit] = []
    for visit in path:
        if not out or out[-1].stage.lower() != visit.stage.lower():
            out.append(visit)
    return out


@dataclass(frozen=True)
class ClosedRow:
    deal_id: str
    group: str | None
    currency: str | None
    won: bool
    amount: Decimal
    created_at: datetime | None
    close_date: date | None


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


def stage_order(
    configured: Sequence[str], paths: Mapping[str, Sequence[tuple[str, datetime]]]
) -> list[str]:
    """The configured order of the default pipeline; without one, stages as first seen
    (deal by deal, in id order, each path in time order), a stage spelled in several letter
    cases once, as first spelled."""
    if configured:
        return list(configured)
    seen: dict[str, str] = {}
    for deal_id in sorted(paths):
        for stage, _ in paths[deal_id]:
            seen.setdefault(stage.lower(), stage)
    return list(seen.values())


def metrics_rows(
    closed: Iterable[ClosedRow],
    paths: Mapping[str, Sequence[tuple[str, datetime]]],
    order: Sequence[str],
    open_counts: Iterable[GroupCount],
    created: Iterable[GroupCount],
) -> list[MetricsRow]:
    """The rows from every closed deal and its stage path, totalled here in Python: the
    reference the SQL totals of `metrics.totals` are tested against."""
    deals: dict[Key, list[ClosedRow]] = defaultdict(list)
    for row in closed:
        deals[(row.group, row.currency)].append(row)
    totals = {
        key: GroupTotals(
            outcome_totals(
                ClosedDeal(d.won, d.amount, d.created_at, d.close_date) for d in group_deals
            ),
            stage_totals(
                (
                    [StageVisit(stage, at) for stage, at in paths.get(d.deal_id, ())]
                    for d in group_deals
                ),
                order,
            ),
        )
        for key, group_deals in deals.items()
    }
    return rows_from_totals(totals, order, open_counts, created)
