"""What the waterfall API answers. Money is a decimal string; each row is one currency."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer

from services.forecast_worker.waterfall.flow import Bucket

Money = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]

ROW_CSV_COLUMNS = ("group", "currency", "start", *(b.value for b in Bucket), "end")
"""Stable for BI tools: the buckets in their documented order, inflows first."""

DEAL_CSV_COLUMNS = (
    "deal_id",
    "group",
    "currency",
    "bucket",
    "amount",
    "before_status",
    "before_close_date",
    "before_amount",
    "after_status",
    "after_close_date",
    "after_amount",
)


class WaterfallRow(BaseModel):
    group: str | None
    currency: str | None
    start: Money
    created: Money
    pulled_in: Money
    moved_in: Money
    increased: Money
    decreased: Money
    pushed_out: Money
    moved_out: Money
    lost: Money
    won: Money
    end: Money


class WaterfallOut(BaseModel):
    period: str
    period_start: date = Field(description="The period's first day in the fiscal calendar")
    period_end: date = Field(description="Exclusive: the first day of the next period")
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    group_by: str | None
    rows: list[WaterfallRow]


class BucketDeal(BaseModel):
    """A deal's share of a bucket, with its state at `from` (null fields when it did not
    exist yet) and at `to`."""

    deal_id: str
    group: str | None
    currency: str | None
    bucket: Bucket
    amount: Money
    before_status: str | None
    before_close_date: date | None
    before_amount: Money | None
    after_status: str | None
    after_close_date: date | None
    after_amount: Money | None


class BucketDealPage(BaseModel):
    items: list[BucketDeal]
    next_cursor: str | None
