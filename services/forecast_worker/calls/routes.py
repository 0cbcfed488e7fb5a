"""Record calls and adjustments, and list their history (newest first)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.forecast_worker.calls import repository
from services.forecast_worker.calls.closing import is_closed
from services.forecast_worker.calls.models import Adjustment, Call
from services.forecast_worker.calls.schemas import (
    ADJUSTMENT_CSV_COLUMNS,
    CALL_CSV_COLUMNS,
    AdjustmentIn,
    AdjustmentOut,
    AdjustmentPage,
    CallIn,
    CallOut,
    CallPage,
)
from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.deps import (
    CurrentConfig,
    ForecastReader,
    ForecastWriter,
    ReadSession,
    WriteSession,
)
from services.forecast_worker.period_input import requested_period
from shared.edge import GuardedRoute
from shared.periods import Period
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, Format, OptionalPeriodQuery
from shared.tables import csv_response, decode_instant_id_cursor, encode_cursor, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)

Limit = Annotated[int, Query(ge=1, le=1000)]


def _open_period(label: str, config: ForecastConfig) -> Period:
    period = requested_period(label, config, "body.period")
    if is_closed(period, datetime.now(UTC).date()):
        raise Problem(
            409, f"Period {period.label} is closed (it ended {period.end}); it takes no changes."
        )
    return period


def _recorded(period: Period, key_id: str) -> dict[str, Any]:
    return {
        "period": period.label,
        "period_start": period.start,
        "period_end": period.end,
        "key_id": key_id,
    }


def _period_filter(label: str | None, config: ForecastConfig) -> tuple[date, date] | None:
    if label is None:
        return None
    period = requested_period(label, config, "query.period")
    return period.start, period.end


def _page(
    request: Request,
    rows: Sequence[Call | Adjustment],
    out: type[CallOut | AdjustmentOut],
    page: type[CallPage | AdjustmentPage],
    columns: Sequence[str],
    limit: int,
    fmt: str | None,
) -> BaseModel | Response:
    items = [out.model_validate(r) for r in rows]
    last = rows[-1] if rows and len(rows) == limit else None
    cursor = encode_cursor([last.recorded_at.isoformat(), last.id]) if last else None
    if wants_csv(request, fmt):
        return csv_response(columns, (i.model_dump(mode="json") for i in items), cursor)
    return page.model_validate({"items": items, "next_cursor": cursor})


@router.post(
    "/v1/forecast/calls",
    status_code=201,
    response_model=CallOut,
    summary="Record a rep's call for a period (append-only; the latest is the current one)",
    responses=problem_responses(409, 422),
)
async def post_call(
    principal: ForecastWriter, db: WriteSession, config: CurrentConfig, call: CallIn
) -> CallOut:
    period = _open_period(call.period, config)
    values = call.model_dump(exclude={"period"}) | _recorded(period, principal.key_id)
    return CallOut.model_validate(await repository.add_call(db, values=values))


@router.post(
    "/v1/forecast/adjustments",
    status_code=201,
    response_model=AdjustmentOut,
    summary="Record a manager's adjustment of a rep's or a team's number (append-only)",
    responses=problem_responses(409, 422),
)
async def post_adjustment(
    principal: ForecastWriter, db: WriteSession, config: CurrentConfig, adjustment: AdjustmentIn
) -> AdjustmentOut:
    period = _open_period(adjustment.period, config)
    values = adjustment.model_dump(exclude={"period", "target"}) | _recorded(
        period, principal.key_id
    )
    values |= {"target_kind": adjustment.target.kind, "target_id": adjustment.target.id}
    return AdjustmentOut.model_validate(await repository.add_adjustment(db, values=values))


@router.get(
    "/v1/forecast/calls",
    response_model=CallPage,
    summary="Call history, newest first",
    responses=TABLE_RESPONSES,
)
async def list_calls(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    period: OptionalPeriodQuery = None,
    rep_id: str | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.list_calls(
        db,
        period=_period_filter(period, config),
        rep_id=rep_id,
        after=decode_instant_id_cursor(cursor),
        limit=limit,
    )
    return _page(request, rows, CallOut, CallPage, CALL_CSV_COLUMNS, limit, format)


@router.get(
    "/v1/forecast/adjustments",
    response_model=AdjustmentPage,
    summary="Adjustment history, newest first (a rep's and a team's together if both given)",
    responses=TABLE_RESPONSES,
)
async def list_adjustments(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    period: OptionalPeriodQuery = None,
    rep_id: str | None = None,
    team_id: str | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.list_adjustments(
        db,
        period=_period_filter(period, config),
        rep_id=rep_id,
        team_id=team_id,
        after=decode_instant_id_cursor(cursor),
        limit=limit,
    )
    return _page(
        request, rows, AdjustmentOut, AdjustmentPage, ADJUSTMENT_CSV_COLUMNS, limit, format
    )
