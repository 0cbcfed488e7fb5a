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


STATEMENT_TOTALS_CSV_COLUMNS = ("currency", "total", "amount", "explanation")


class TotalsOut(BaseModel):
    earned: DecimalAmount = Field(description="Every earning line, held or not.")
    withheld_for_cash: DecimalAmount = Field(description="Withheld on deals paid on cash.")
    released_by_cash: DecimalAmount = Field(description="Released by invoices paid.")
    carried_out: DecimalAmount = Field(description="Above the payout cap, carried forward.")
    carried_in: DecimalAmount = Field(description="Carried in from the previous payout cap.")
    held: DecimalAmount
    payable: DecimalAmount = Field(
        description="earned - withheld_for_cash + released_by_cash - carried_out + "
        "carried_in - held."
    )
    paid: DecimalAmount
    paid_for_earlier: DecimalAmount = Field(
        description="Part of `paid` for earlier closed periods' lines released from hold."
    )
    balance: DecimalAmount = Field(description="payable - (paid - paid_for_earlier).")
    explained: dict[str, str] = Field(description="Each total in plain words.")


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
    not_covered: list[str] = Field(
        default_factory=list,
        description="Periods of other lengths that plans in force over this period pay by "
        "(a monthly plan's months inside a quarter, say): this close does not lock them; "
        "each is closed on its own.",
    )


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: str = Field(min_length=1, max_length=256)
    period: str = Field(min_length=1, max_length=20)
    amount: DecimalAmount
    currency: CurrencyCode
    reason: str = Field(min_length=1, max_length=2000)
    deal_id: str | None = Field(default=None, max_length=256)
