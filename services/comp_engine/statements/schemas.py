"""Statement, period-close and adjustment shapes of the comp API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.money import CurrencyCode, DecimalAmount

STATEMENT_CSV_COLUMNS = (
    "line_id",
    "kind",
    "earned_in",
    "deal_id",
    "rule",
    "role",
    "amount",
    "currency",
    "held",
    "explanation",
)


class StatementLineOut(BaseModel):
    line_id: int
    kind: str
    earned_in: str = Field(description="The period earned in; differs for prior-period lines.")
    deal_id: str
    rule: str
    role: str
    amount: DecimalAmount
    currency: str
    held: bool
    explanation: str
    trace: dict[str, Any]


class TotalsOut(BaseModel):
    earned: DecimalAmount
    held: DecimalAmount
    payable: DecimalAmount
    paid: DecimalAmount
    balance: DecimalAmount


class StatementOut(BaseModel):
    rep_id: str
    period: str
    closed: bool = Field(description="A closed period's statement never changes.")
    lines: list[StatementLineOut]
    totals: dict[str, TotalsOut] = Field(description="Per currency.")
    attainment: dict[str, str] = Field(description="Per component on attainment, in percent.")
    draw_balance: str | None


class CloseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    period: str
    requested_by: str
    requested_at: datetime
    approved_by: str | None
    closed_at: datetime | None
    payout_lines: int | None = None


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: str = Field(min_length=1, max_length=256)
    period: str = Field(min_length=1, max_length=20)
    amount: DecimalAmount
    currency: CurrencyCode
    reason: str = Field(min_length=1, max_length=2000)
    deal_id: str | None = Field(default=None, max_length=256)
