"""The pipeline waterfall of a period between two instants, and the deals of a bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.deps import CurrentConfig, ForecastReader, ReadSession
from services.forecast_worker.period_input import requested_period
from services.forecast_worker.waterfall import books, repository, totals
from services.forecast_worker.waterfall.flow import Bucket, Waterfall, Window
from services.forecast_worker.waterfall.repository import Candidate, GroupBy, Side
from services.forecast_worker.waterfall.schemas import (
    DEAL_CSV_COLUMNS,
    ROW_CSV_COLUMNS,
    BucketDeal,
    BucketDealPage,
    WaterfallOut,
    WaterfallRow,
)
from shared.edge import GuardedRoute
from shared.periods import Period
from shared.problems import Problem
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import csv_response, decode_text_cursor, encode_cursor, wants_csv
from shared.values import UtcDatetime

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)

From = Annotated[UtcDatetime, Query(alias="from", description="The earlier instant (RFC 3339)")]
To = Annotated[UtcDatetime, Query(description="The later instant (RFC 3339)")]
GroupByQuery = Annotated[
    GroupBy | None, Query(description="Group by the owner, or their team, manager or region")
]


def _invalid(location: str, message: str) -> Problem:
    return Problem(
        422,
        "The request is not valid; see errors.",
        errors=[{"location": location, "message": message}],
    )


def _period(config: CurrentConfig, *, period: str, at_from: datetime, at_to: datetime) -> Period:
    """The requested period, after the checks both routes make (422s naming the input)."""
    chosen = requested_period(period, config, "query.period")
    if at_from > at_to:
        raise _invalid("query.from", "from must not be after to")
    return chosen


async def _candidates(
    db: ReadSession,
    config: CurrentConfig,
    *,
    period: str,
    at_from: datetime,
    at_to: datetime,
    group_by: GroupBy | None,
) -> tuple[Period, Window, list[Candidate]]:
    chosen = _period(config, period=period, at_from=at_from, at_to=at_to)
    window = Window(chosen.start, chosen.end)
    found = await repository.candidates(
        db,
        start=chosen.start,
        end=chosen.end,
        at_from=at_from,
        at_to=at_to,
        group_by=group_by,
    )
    return chosen, window, found


def _row(key: books.Key, waterfall: Waterfall) -> WaterfallRow:
    group, currency = key
    buckets = {b.value: amount for b, amount in waterfall.buckets.items()}
    return WaterfallRow(
        group=group, currency=currency, start=waterfall.start, end=waterfall.end, **buckets
    )


@router.get(
    "/v1/forecast/waterfall",
    response_model=WaterfallOut,
    summary="How a period's open pipeline changed between two instants, bucket by bucket",
    responses=TABLE_RESPONSES,
)
async def get_waterfall(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    period: PeriodQuery,
    at_from: From,
    to: To,
    group_by: GroupByQuery = None,
    format: Format = None,
) -> WaterfallOut | Response:
    chosen = _period(config, period=period, at_from=at_from, at_to=to)
    window = Window(chosen.start, chosen.end)
    table = await totals.rows(db, window, (at_from, to), group_by)
    rows = [_row(key, w) for key, w in books.ordered(table)]
    if wants_csv(request, format):
        return csv_response(ROW_CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return WaterfallOut(
        period=chosen.label,
        period_start=chosen.start,
        period_end=chosen.end,
        from_=at_from,
        to=to,
        group_by=group_by,
        rows=rows,
    )


def _side(side: Side | None, prefix: str) -> dict[str, Any]:
    point = side.point if side else None
    return {
        f"{prefix}_status": point.status if point else None,
        f"{prefix}_close_date": point.close_date if point else None,
        f"{prefix}_amount": point.amount if point else None,
    }


def _bucket_deal(entry: books.Entry) -> BucketDeal:
    group, currency = entry.key
    return BucketDeal(
        deal_id=entry.candidate.deal_id,
        group=group,
        currency=currency,
        bucket=entry.movement.bucket,
        amount=entry.movement.amount,
        **_side(entry.candidate.before, "before"),
        **_side(entry.candidate.after, "after"),
    )


@router.get(
    "/v1/forecast/waterfall/deals",
    response_model=BucketDealPage,
    summary="The deals of one waterfall bucket, with their state at both instants",
    responses=TABLE_RESPONSES,
)
async def list_bucket_deals(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    period: PeriodQuery,
    at_from: From,
    to: To,
    bucket: Bucket,
    group_by: GroupByQuery = None,
    group: Annotated[str | None, Query(max_length=200, description="One group's deals")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    format: Format = None,
) -> BucketDealPage | Response:
    if group is not None and group_by is None:
        raise _invalid("query.group", "group needs group_by")
    after = decode_text_cursor(cursor)
    _chosen, window, found = await _candidates(
        db, config, period=period, at_from=at_from, at_to=to, group_by=group_by
    )
    # Candidates come ordered by deal id, and a deal is in a bucket at most once.
    matching = [
        e
        for e in books.entries(found, window)
        if e.movement.bucket == bucket
        and (group is None or e.key[0] == group)
        and (after is None or e.candidate.deal_id > after)
    ]
    page = [_bucket_deal(e) for e in matching[:limit]]
    more = len(matching) > limit
    next_cursor = encode_cursor([page[-1].deal_id]) if more else None
    if wants_csv(request, format):
        return csv_response(
            DEAL_CSV_COLUMNS, (d.model_dump(mode="json") for d in page), next_cursor
        )
    return BucketDealPage(items=page, next_cursor=next_cursor)
