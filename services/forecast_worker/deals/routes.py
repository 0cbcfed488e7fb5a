"""Read API over the deal projection: deals now, as of a past instant, and their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.deals import repository
from services.forecast_worker.deals.schemas import (
    DEAL_CSV_COLUMNS,
    DealHistory,
    DealOut,
    DealPage,
)
from services.forecast_worker.deps import ForecastReader, ReadSession
from services.forecast_worker.models import Deal, DealVersion
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import Format
from shared.tables import (
    csv_response,
    decode_text_cursor,
    next_cursor,
    wants_csv,
)
from shared.values import UtcDatetime

router = APIRouter(tags=["deals"], route_class=GuardedRoute)

AsOf = Annotated[
    UtcDatetime | None,
    Query(description="Answer as things stood at this instant (RFC 3339), from deal history"),
]


def _page(
    request: Request, rows: Sequence[Deal | DealVersion], limit: int, fmt: str | None
) -> DealPage | Response:
    items = [DealOut.model_validate(r) for r in rows]
    cursor = next_cursor(rows, limit, "deal_id")
    if wants_csv(request, fmt):
        return csv_response(DEAL_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), cursor)
    return DealPage(items=items, next_cursor=cursor)


@router.get(
    "/v1/deals",
    response_model=DealPage,
    summary="List deals (current, or as of a past instant)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_deals(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    owner_id: str | None = None,
    stage: str | None = None,
    status: Literal["open", "won", "lost"] | None = None,
    close_date_from: date | None = None,
    close_date_to: date | None = None,
    updated_since: Annotated[
        UtcDatetime | None, Query(description="Only deals changed after this instant")
    ] = None,
    include_deleted: bool = False,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    format: Format = None,
) -> DealPage | Response:
    after = decode_text_cursor(cursor)
    flt = repository.DealFilter(
        owner_id=owner_id,
        stage=stage,
        status=status,
        close_date_from=close_date_from,
        close_date_to=close_date_to,
        updated_since=updated_since,
        include_deleted=include_deleted,
    )
    rows = await repository.list_deals(db, flt=flt, as_of=as_of, after=after, limit=limit)
    return _page(request, rows, limit, format)


@router.get(
    "/v1/deals/{deal_id}",
    response_model=DealOut,
    summary="One deal",
    responses=problem_responses(404),
)
async def get_deal(deal_id: str, _: ForecastReader, db: ReadSession, as_of: AsOf = None) -> DealOut:
    row = await repository.get_deal(db, deal_id=deal_id, as_of=as_of)
    if row is None:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise Problem(404, f"No deal {deal_id!r}{when}.")
    return DealOut.model_validate(row)


@router.get(
    "/v1/deals/{deal_id}/history",
    response_model=DealHistory,
    summary="Every version of a deal, oldest first",
    responses=problem_responses(404),
)
async def get_history(
    deal_id: str, _: ForecastReader, db: ReadSession, as_of: AsOf = None
) -> DealHistory:
    rows = await repository.deal_history(db, deal_id=deal_id, as_of=as_of)
    if not rows:
        raise Problem(404, f"No deal {deal_id!r}.")
    return DealHistory(deal_id=deal_id, versions=[DealOut.model_validate(r) for r in rows])
