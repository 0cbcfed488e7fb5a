"""Read API over the quotas."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.forecast_worker.deps import ForecastReader, ReadSession
from services.forecast_worker.quotas import repository
from services.forecast_worker.quotas.schemas import QUOTA_CSV_COLUMNS, QuotaList, QuotaOut
from shared.edge import GuardedRoute
from shared.query_params import Format
from shared.tables import csv_response, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)


@router.get(
    "/v1/forecast/quotas",
    response_model=QuotaList,
    summary="Quotas whose period overlaps the range, of a rep or a team",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_quotas(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    period_start: date | None = None,
    period_end: date | None = None,
    rep_id: str | None = None,
    team_id: str | None = None,
    format: Format = None,
) -> QuotaList | Response:
    flt = repository.QuotaFilter(
        period_start=period_start, period_end=period_end, rep_id=rep_id, team_id=team_id
    )
    items = [QuotaOut.model_validate(q) for q in await repository.list_quotas(db, flt=flt)]
    if wants_csv(request, format):
        return csv_response(QUOTA_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), None)
    return QuotaList(items=items)
