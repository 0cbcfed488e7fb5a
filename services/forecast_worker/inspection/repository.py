"""All SQL of the deal inspection. Functions take a session, then keyword arguments.

One query reads every open, not deleted deal with what the rules need from its history:
when it entered its current stage (the `valid_from` of the first version of the latest run
of versions in that stage, so a deal that left a stage and came back is timed from its
return; stage names compared without regard to case, as the metrics compare them) and its
close dates in version order. The medians per stage come from the same stage visits the
metrics use (the summary's, `metrics.repository.visit_middles`, and
`figures.stage_figures_from_totals`), so an inspection and `/v1/forecast/metrics/stages`
agree on what "the median" is; they are keyed by the lower-case stage name, which the
rules look a deal's stage up by. The caller brings the summary up to date first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.metrics.figures import StageTotals, stage_figures_from_totals
from services.forecast_worker.metrics.repository import visit_middles
from services.forecast_worker.models import Deal, DealVersion

MEDIAN_WINDOW = timedelta(days=365)
"""The medians are over the deals closed in the year before the inspection's day."""

_deal = Deal.__table__.c
_version = DealVersion.__table__.c
_open = and_(_deal.deleted.is_(False), _deal.status == "open")


@dataclass(frozen=True)
class OpenRow:
    deal_id: str
    owner_id: str | None
    stage: str | None
    pipeline: str | None
    close_date: date | None
    entered_stage_at: datetime
    close_dates: Sequence[date | None]
    fields: Mapping[str, Any]
    """The deal's current columns by field name, `properties` included."""


async def open_deals(session: AsyncSession, *, after: str | None, limit: int) -> list[OpenRow]:
    """The first `limit` open, not deleted deals after `after`, in deal id order: a page
    reads only the deals it needs, not all of them (150 k open deals at 1 M)."""
    chosen = select(Deal.__table__).where(_open).order_by(_deal.deal_id).limit(limit)
    if after is not None:
        chosen = chosen.where(_deal.deal_id > after)
    ids = chosen.subquery("chosen")
    stage = func.lower(_version.stage)
    previous = func.lag(stage).over(partition_by=_version.deal_id, order_by=_version.version)
    first = func.row_number().over(partition_by=_version.deal_id, order_by=_version.version)
    history = (
        select(
            _version.deal_id,
            _version.version,
            _version.valid_from,
            _version.close_date,
            or_(first == 1, previous.is_distinct_from(stage)).label("starts_run"),
        )
        .select_from(DealVersion.__table__.join(ids, _version.deal_id == ids.c.deal_id))
        .subquery("history")
    )
    h = history.c
    # The first version of the latest run: the run starts in version order, latest first.
    entered = func.array_agg(aggregate_order_by(h.valid_from, h.version.desc())).filter(
        h.starts_run
    )[1]
    per_deal = (
        select(
            h.deal_id,
            entered.label("entered_stage_at"),
            func.array_agg(aggregate_order_by(h.close_date, h.version)).label("close_dates"),
        )
        .group_by(h.deal_id)
        .subquery("per_deal")
    )
    rows = await session.execute(
        select(ids, per_deal.c.entered_stage_at, per_deal.c.close_dates)
        .join(per_deal, per_deal.c.deal_id == ids.c.deal_id)
        .order_by(ids.c.deal_id)
    )
    return [
        OpenRow(
            deal_id=r.deal_id,
            owner_id=r.owner_id,
            stage=r.stage,
            pipeline=r.pipeline,
            close_date=r.close_date,
            entered_stage_at=r.entered_stage_at,
            close_dates=list(r.close_dates),
            fields=dict(r._mapping),
        )
        for r in rows
    ]


async def median_days(session: AsyncSession, *, day: date) -> dict[str, Decimal]:
    """{stage in lower case: median days in it} over the deals closed in the year up to
    `day`, for every stage with a finished visit, however its visits spelled it."""
    middles = await visit_middles(session, start=day - MEDIAN_WINDOW, end=day)
    totals = {stage: StageTotals(0, 0, middle) for stage, middle in middles.items()}
    return {
        f.stage: f.median_days
        for f in stage_figures_from_totals(totals, list(totals))
        if f.median_days is not None
    }
