"""What the deal read API answers. Money is a decimal string; times are RFC 3339 UTC."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

DEAL_CSV_COLUMNS = (
    "deal_id",
    "name",
    "account_id",
    "owner_id",
    "amount",
    "currency",
    "stage",
    "pipeline",
    "forecast_category",
    "close_date",
    "created_at",
    "deal_type",
    "status",
    "deleted",
    "version",
    "valid_from",
    "valid_to",
    "splits",
    "properties",
)


class DealOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    deal_id: str
    name: str | None
    account_id: str | None
    owner_id: str | None
    amount: Decimal | None = Field(description="Decimal string")
    currency: str | None
    stage: str | None
    pipeline: str | None
    forecast_category: str | None
    close_date: date | None
    created_at: datetime | None
    deal_type: str | None
    status: str
    deleted: bool
    splits: list[dict[str, Any]] | None
    properties: dict[str, Any]
    version: int
    valid_from: datetime = Field(description="CRM time from which this state holds")
    valid_to: datetime | None = Field(None, description="When it stopped holding; null if current")

    @field_serializer("amount")
    def _amount(self, value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")


class DealPage(BaseModel):
    items: list[DealOut]
    next_cursor: str | None


class DealHistory(BaseModel):
    deal_id: str
    versions: list[DealOut]
