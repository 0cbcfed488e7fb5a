"""GET /v1/forecast/accuracy: every snapshot's forecasts of the closed periods in a range
against what actually closed won."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.accuracy import repository
from services.forecast_worker.accuracy.report import Forecast, Summary, Taken, forecasts, summaries
from services.forecast_worker.accuracy.schemas import (
    FORECAST_CSV_COLUMNS,
    SUMMARY_CSV_COLUMNS,
    AccuracyOut,
    ForecastOut,
    SummaryOut,
)
from services.forecast_worker.deps import CurrentConfig, ForecastReader, ReadSession, Stages
from services.forecast_worker.period_input import invalid_input, requested_period
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import PeriodOut
from services.forecast_worker.snapshots.repository import list_snapshots
from shared.edge import GuardedRoute
from shared.periods import midnight, periods_between, periods_from_to
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import csv_response, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)

MAX_PERIODS = 120

DESCRIPTION = f"""\
For each closed period (its end is past) from `from_period` to `to_period` (both included,
the same kind, at most {MAX_PERIODS}): every snapshot of the period taken as of its end or
earlier (`GET /v1/forecast/snapshots`; one taken later knew the outcome), per group of
`group_by`, forecast `call_commit` and `adjustment_commit` (where the snapshot carried one)
and the computed `commit_plus_closed` and `best_case_plus_commit_plus_closed`, each
against the actual: the period's closed won now. `error` = forecast - actual, `error_pct` =
error / actual. The summaries, per (group, currency, measure), over every forecast of the
range, and with `by_week` also per `weeks_before_end`: `bias` (mean error_pct, where
defined), `wape` (sum |error| / sum actual), `hit_rate_5` and `hit_rate_10` (share of the
forecasts within ±5 % / ±10 %; against an actual of 0 only a forecast of 0 hits). CSV:
`table=forecasts` or `summaries`.
"""


def _forecast_out(f: Forecast) -> ForecastOut:
    o = f.outcome
    return ForecastOut(
        period=f.period,
        snapshot_id=f.snapshot_id,
        as_of=f.as_of,
        kind=f.kind,
        weeks_before_end=f.weeks_before_end,
        group=f.group,
        currency=f.currency,
        measure=f.measure,
        forecast=o.forecast,
        actual=o.actual,
        error=o.error,
        error_pct=o.error_pct,
    )


def _summary_out(s: Summary) -> SummaryOut:
    a = s.accuracy
    return SummaryOut(
        group=s.group,
        currency=s.currency,
        measure=s.measure,
        weeks_before_end=s.weeks_before_end,
        periods=s.periods,
        forecasts=a.forecasts,
        bias=a.bias,
        wape=a.wape,
        hit_rate_5=a.hit_rate_5,
        hit_rate_10=a.hit_rate_10,
    )


@router.get(
    "/v1/forecast/accuracy",
    response_model=AccuracyOut,
    summary="Each snapshot's call and roll-up of closed periods against actual closed won",
    description=DESCRIPTION,
    responses=TABLE_RESPONSES,
)
async def get_accuracy(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    stages: Stages,
    from_period: PeriodQuery,
    to_period: PeriodQuery,
    group_by: GroupBy,
    by_week: Annotated[bool, Query(description="Also summarise per weeks_before_end")] = False,
    table: Annotated[
        Literal["forecasts", "summaries"], Query(description="Which table CSV answers")
    ] = "forecasts",
    format: Format = None,
) -> AccuracyOut | Response:
    first = requested_period(from_period, config, "query.from_period")
    last = requested_period(to_period, config, "query.to_period")
    if last.kind != first.kind:
        raise invalid_input("query.to_period", f"to_period must be a {first.kind} as from_period")
    if first.start > last.start:
        raise invalid_input("query.from_period", "from_period must not be after to_period")
    if periods_from_to(first, last) > MAX_PERIODS:
        raise invalid_input("query.to_period", f"the range has more than {MAX_PERIODS} periods")
    periods = periods_between(first.start, last.start, first.kind, first.fiscal_start_month)
    today = datetime.now(UTC).date()
    closed = [p for p in periods if p.end <= today]
    made: list[Forecast] = []
    for period in closed:
        actual = await repository.actuals(db, stages=stages, period=period, group_by=group_by)
        taken = [
            Taken(f.header.id, f.header.as_of, f.header.kind, f.rows[group_by])
            for f in await list_snapshots(
                db, period=period, group_by=group_by, until=midnight(period.end)
            )
        ]
        made.extend(forecasts(period.label, period.end, taken, actual))
    forecast_rows = [_forecast_out(f) for f in made]
    summary_rows = [_summary_out(s) for s in summaries(made, by_week=by_week)]
    if wants_csv(request, format):
        if table == "summaries":
            lines = (s.model_dump(mode="json") for s in summary_rows)
            return csv_response(SUMMARY_CSV_COLUMNS, lines, None)
        lines = (f.model_dump(mode="json") for f in forecast_rows)
        return csv_response(FORECAST_CSV_COLUMNS, lines, None)
    return AccuracyOut(
        from_period=first.label,
        to_period=last.label,
        group_by=group_by,
        periods=[PeriodOut(label=p.label, start=p.start, end=p.end) for p in closed],
        forecasts=forecast_rows,
        summaries=summary_rows,
    )
