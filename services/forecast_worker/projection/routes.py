"""GET /v1/forecast/projection: what history says the period will close, beside the roll-up."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.deps import CurrentConfig, ForecastReader, ReadSession, Stages
from services.forecast_worker.period_input import invalid_input, requested_period
from services.forecast_worker.projection import repository
from services.forecast_worker.projection.model import CENT
from services.forecast_worker.projection.rows import projection_rows
from services.forecast_worker.projection.schemas import CSV_COLUMNS, Projection
from services.forecast_worker.projection.windows import MAX_LOOKBACK, elapsed, past_windows
from services.forecast_worker.rollup.compute import period_sums
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import PeriodOut
from shared.edge import GuardedRoute
from shared.periods import hierarchy_day
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import csv_response, wants_csv
from shared.values import UtcDatetime

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)
DAY = Decimal(86400)

DESCRIPTION = """\
A top-down forecast from history beside the bottom-up roll-up, per (group, currency), then
one `company` row per currency.

**The point of the period** is the instant projected from (`as_of`, default now; not in
the future) minus the period's start, clamped to the period. The past periods are the
`lookback` periods of the same kind (quarters for a quarter, months for a month, fiscal
years for a year) before the requested one that had ended by that instant, leaving out any
before the first deal existed; `lookback_periods` lists those used, latest first. Each is
looked at with the same time left before its end as the point leaves the requested period
(no earlier than its own start), from deal history (the version of each deal valid then,
as the roll-up's `as_of`).

**Rates.** An open deal is put in a cohort by its stage and `due`: its close date
`in_period`, `overdue` (before the period), `later` (after it) or `undated` (none); stage
names match without regard to case, spelled as configured (else their first spelling in
code-point order). In each
past period, per group and cohort: `open` = the amount of the deals open at its point,
`won` = what of exactly those deals was won with a close date in that period, at its won
amount, by the period's end (the version valid at the end's midnight UTC). The rate of a
cohort = sum of won / sum of open over the past periods (pooled by value), 4 places.
`new_won` = what was won in a past period by deals that did not exist at its point; its
mean over the past periods is `expected_new`, to the cent. Groups are the owner's rep,
team, manager or region on the hierarchy day (the point's date, at most the period's last
day) for the open deals, and the period's last day for new business: a rep who moved
does not restate the past.

**Per row:** `closed_won` = the roll-up's (won deals closing in the period, as of the
instant); `from_pipeline` = sum over the open deals now (every close date, by cohort) of
amount x the cohort's rate, each rounded to the cent; a cohort the group never had in its
past periods uses the company's rate in that currency (`rate_source` = `company`); a cohort
nobody had is `unprojected` (its amount, not projected). `projected` = closed_won +
from_pipeline + expected_new. `bottom_up_commit` / `bottom_up_best_case` = the roll-up's
`commit_plus_closed` / `best_case_plus_commit_plus_closed` (deals closing in the period
only); `gap` = projected - bottom_up_commit (positive: history expects more than the reps
commit), `gap_best_case` = projected - bottom_up_best_case. `open_pipeline` = the open
amount now, every cohort. `rates` (JSON only) lists each cohort of the open pipeline with
its amount, rate, source and projected amount. A company row learns from everyone's
history pooled, so it is not the sum of the group rows. Currencies are never added.

`as_of` before any data: no rows and no lookback periods.
"""


@router.get(
    "/v1/forecast/projection",
    response_model=Projection,
    summary="Top-down projection from history beside the bottom-up roll-up (JSON or CSV)",
    description=DESCRIPTION,
    responses=TABLE_RESPONSES,
)
async def get_projection(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    stages: Stages,
    period: PeriodQuery,
    group_by: GroupBy,
    as_of: Annotated[
        UtcDatetime | None, Query(description="Project as things stood at this instant")
    ] = None,
    lookback: Annotated[
        int, Query(ge=1, le=MAX_LOOKBACK, description="Past periods of the same kind to learn from")
    ] = 4,
    format: Format = None,
) -> Projection | Response:
    span = requested_period(period, config, "query.period")
    now = datetime.now(UTC)
    if as_of is not None and as_of > now:
        raise invalid_input("query.as_of", "as_of must not be in the future")
    instant = as_of or now
    first = await repository.first_version_at(db)
    chosen = past_windows(span, instant, lookback, first)
    windows = [window for _, window in chosen]
    rows = []
    if first is not None and first <= instant:
        day = hierarchy_day(span, instant)
        rows = projection_rows(
            periods=[w.index for w in windows],
            cohorts=await repository.past_cohorts(db, windows=windows, group_by=group_by),
            new_won=await repository.past_new_won(db, windows=windows, group_by=group_by),
            pipeline=await repository.open_pipeline(
                db, start=span.start, end=span.end, day=day, as_of=as_of, group_by=group_by
            ),
            sums=await period_sums(db, stages=stages, period=span, group_by=group_by, as_of=as_of),
            stage_names=stages.stage_names(),
        )
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return Projection(
        period=PeriodOut(label=span.label, start=span.start, end=span.end),
        group_by=group_by,
        as_of=as_of,
        point=instant,
        elapsed_days=(Decimal(elapsed(span, instant).total_seconds()) / DAY).quantize(CENT),
        lookback_periods=[past.label for past, _ in chosen],
        rows=rows,
    )
