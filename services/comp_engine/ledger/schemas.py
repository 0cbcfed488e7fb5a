"""Ledger lines as the API serves them, with stable CSV columns for BI tools."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.money import DecimalAmount

LINE_CSV_COLUMNS = (
    "id",
    "rep_id",
    "period",
    "posted_period",
    "kind",
    "rule",
    "deal_id",
    "booking",
    "role",
    "amount",
    "currency",
    "cause",
    "reason",
    "author",
    "created_at",
    "trace",
)

WAITING_CSV_COLUMNS = ("rep_id", "subject", "reason", "since")


class LineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rep_id: str
    period: str
    posted_period: str
    kind: str
    rule: str
    deal_id: str
    booking: int
    role: str
    amount: DecimalAmount
    currency: str
    cause: str | None
    reason: str | None
    author: str | None
    created_at: datetime
    trace: dict[str, Any]


class LinePage(BaseModel):
    items: list[LineOut]
    next_cursor: str | None


class WaitingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rep_id: str
    subject: str
    reason: str
    since: datetime


class WaitingPage(BaseModel):
    items: list[WaitingOut]
    next_cursor: str | None
