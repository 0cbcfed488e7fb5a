"""Pipeline metrics over the deals closed in a date range, per rep, team, manager or region."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.deps import CurrentConfig, ForecastReader, ReadSession, Sessions
from services.forecast_worker.metrics.reading import metrics_rows
from services.forecast_worker.metrics.repository import GroupBy
from services.forecast_worker.metrics.schemas import (
    METRICS_CSV_COLUMNS,
    STAGES_CSV_COLUMNS,
    MetricsOut,
    MetricsRow,
    StageRow,
    StagesOut,
)
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import Format
from shared.tables import csv_response, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)

From = Annotated[date, Query(alias="from", description="First close date (ISO), inclusive")]
To = Annotated[date, Query(description="Last close date (ISO), inclusive")]
Grouping = Annotated[GroupBy | None, Query(description="Absent: one row for everything")]


def _configured_stages(config: ForecastConfig) -> list[str]:
    pipeline = next((p for p in config.pipelines if p.name == config.default_pipeline), None)
    return [] if pipeline is None else [s.name for s in pipeline.stages]


async def _rows(
    db: ReadSession,
    sessions: Sessions,
    config: ForecastConfig,
    start: date,
    end: date,
    group_by: GroupBy | None,
) -> list[MetricsRow]:
    if start > end:
        raise Problem(422, f"from ({start}) is after to ({end}).")
    return await metrics_rows(
        db,
        sessions,
        configured=_configured_stages(config),
        start=start,
        end=end,
        group_by=group_by,
    )


@router.get(
    "/v1/forecast/metrics",
    response_model=MetricsOut,
    summary="Win rates, cycle, velocity, created pipeline and stage conversion per group",
    responses={**problem_responses(422), 200: {"content": {"text/csv": {}}}},
)
async def get_metrics(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    sessions: Sessions,
    config: CurrentConfig,
    start: From,
    to: To,
    group_by: Grouping = None,
    format: Format = None,
) -> MetricsOut | Response:
    rows = await _rows(db, sessions, config, start, to, group_by)
    if wants_csv(request, format):
        return csv_response(
            METRICS_CSV_COLUMNS, (r.model_dump(mode="json", exclude={"stages"}) for r in rows), None
        )
    return MetricsOut(start=start, end=to, group_by=group_by, rows=rows)


@router.get(
    "/v1/forecast/metrics/stages",
    response_model=StagesOut,
    summary="Stage conversion and median days in stage, one row per group and stage",
    responses={**problem_responses(422), 200: {"content": {"text/csv": {}}}},
)
async def get_stage_metrics(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    sessions: Sessions,
    config: CurrentConfig,
    start: From,
    to: To,
    group_by: Grouping = None,
    format: Format = None,
) -> StagesOut | Response:
    rows = [
        StageRow(group=r.group, currency=r.currency, **s.model_dump())
        for r in await _rows(db, sessions, config, start, to, group_by)
        for s in r.stages
    ]
    if wants_csv(request, format):
        return csv_response(STAGES_CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return StagesOut(start=start, end=to, group_by=group_by, rows=rows)
