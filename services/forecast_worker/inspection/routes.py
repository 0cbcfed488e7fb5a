"""Open deals that need attention, and why: stuck, pushed, missing fields, past close date."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deps import ForecastReader, ReadSession, Stages
from services.forecast_worker.inspection import repository
from services.forecast_worker.inspection.report import Page, inspection_page
from services.forecast_worker.inspection.repository import OpenRow
from services.forecast_worker.inspection.rules import Thresholds
from services.forecast_worker.inspection.schemas import (
    INSPECTION_CSV_COLUMNS,
    InspectionOut,
)
from services.forecast_worker.summary.repository import catch_up
from shared.edge import GuardedRoute
from shared.periods import midnight
from shared.problems import problem_responses
from shared.query_params import Format
from shared.tables import csv_response, decode_text_cursor, encode_cursor, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)
DEFAULTS = Thresholds()

StuckFactor = Annotated[
    Decimal,
    Query(gt=0, le=1000, description="Stuck: in stage longer than this x the stage's median"),
]
MaxPushes = Annotated[
    int, Query(ge=0, le=10_000, description="Pushed: close date moved later more times than this")
]
AsOfDate = Annotated[
    date | None,
    Query(
        description="The inspection's today (midnight UTC), for the past close dates, the "
        "days in stage and the year of closed deals the medians come from; default now"
    ),
]


async def _page(
    db: ReadSession,
    *,
    stages: StageTable,
    median_days: Mapping[str, Decimal],
    now: datetime,
    thresholds: Thresholds,
    after: str | None,
    limit: int,
) -> Page:
    """The page from as few open deals as it needs: read in id order, a batch at a time
    (each twice the one before), until the page is full and one more flagged deal shows
    that another page follows, or no open deal is left."""
    deals: list[OpenRow] = []
    batch = 2 * limit
    while True:
        read = await repository.open_deals(
            db, after=deals[-1].deal_id if deals else after, limit=batch
        )
        deals.extend(read)
        page = inspection_page(
            deals,
            stages=stages,
            median_days=median_days,
            now=now,
            thresholds=thresholds,
            after=after,
            limit=limit,
        )
        if page.last_deal_id is not None or len(read) < batch:
            return page
        batch *= 2


@router.get(
    "/v1/forecast/inspection",
    response_model=InspectionOut,
    summary="Open deals stuck in a stage, pushed too often, missing fields or past their close",
    responses={**problem_responses(400, 422), 200: {"content": {"text/csv": {}}}},
)
async def get_inspection(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    stages: Stages,
    stuck_factor: StuckFactor = DEFAULTS.stuck_factor,
    max_pushes: MaxPushes = DEFAULTS.max_pushes,
    as_of_date: AsOfDate = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Deals per page")] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    format: Format = None,
) -> InspectionOut | Response:
    now = datetime.now(UTC) if as_of_date is None else midnight(as_of_date)
    await catch_up(db)
    await db.commit()
    page = await _page(
        db,
        stages=stages,
        median_days=await repository.median_days(db, day=now.date()),
        now=now,
        thresholds=Thresholds(stuck_factor=stuck_factor, max_pushes=max_pushes),
        after=decode_text_cursor(cursor),
        limit=limit,
    )
    rows = page.rows
    next_cursor = None if page.last_deal_id is None else encode_cursor([page.last_deal_id])
    if wants_csv(request, format):
        return csv_response(
            INSPECTION_CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), next_cursor
        )
    return InspectionOut(
        as_of_date=now.date(),
        stuck_factor=stuck_factor,
        max_pushes=max_pushes,
        rows=rows,
        next_cursor=next_cursor,
    )
