"""What the quota read API answers. Money is a decimal string."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

QUOTA_CSV_COLUMNS = (
    "quota_id",
    "rep_id",
    "team_id",
    "period_start",
    "period_end",
    "amount",
    "currency",
)


class QuotaOut(BaseModel):
    """A quota for a period, both ends inclusive, of exactly one rep or team."""

    model_config = ConfigDict(from_attributes=True)

    quota_id: str
    rep_id: str | None
    team_id: str | None
    period_start: date
    period_end: date
    amount: Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)] = Field(
        description="Decimal string"
    )
    currency: str


class QuotaList(BaseModel):
    items: list[QuotaOut]
