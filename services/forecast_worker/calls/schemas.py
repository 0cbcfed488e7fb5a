"""What the calls and adjustments API takes and answers.

Money is a decimal string (a JSON float is refused: it has already lost the cents) and
never negative. The period is a label (`2026-Q4`, `2026-11`, `FY2026`) read with the
configured fiscal calendar by the route, which knows the configuration.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.money import CurrencyCode, DecimalAmount

Category = Literal["commit", "best_case", "pipeline"]
TargetKind = Literal["rep", "team"]
NOTE_MAX = 255
"""As Salesforce's ForecastingAdjustment note."""


def _not_negative(amount: Decimal) -> Decimal:
    if amount < 0:
        raise ValueError("amount must not be negative")
    return amount


Amount = Annotated[DecimalAmount, AfterValidator(_not_negative)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Note = Annotated[str, Field(min_length=1, max_length=NOTE_MAX)]
PeriodLabel = Annotated[
    str,
    Field(min_length=1, max_length=20, description="`2026-Q4`, `2026-11` or `FY2026`"),
]


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: Name
    period: PeriodLabel
    commit: Amount | None = None
    best_case: Amount | None = None
    pipeline: Amount | None = None
    currency: CurrencyCode
    note: Note | None = None
    author: Name = Field(description="Who made the call (keys do not name people yet)")

    @model_validator(mode="after")
    def _some_category(self) -> CallIn:
        if self.commit is None and self.best_case is None and self.pipeline is None:
            raise ValueError("a call needs at least one of commit, best_case, pipeline")
        return self


class Target(BaseModel):
    """Exactly one of the two: a report's number or a team's."""

    model_config = ConfigDict(extra="forbid")

    rep_id: Name | None = None
    team_id: Name | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.rep_id is None) == (self.team_id is None):
            raise ValueError("target takes exactly one of rep_id, team_id")
        return self

    @property
    def kind(self) -> TargetKind:
        return "rep" if self.rep_id is not None else "team"

    @property
    def id(self) -> str:
        target = self.rep_id if self.rep_id is not None else self.team_id
        assert target is not None
        return target


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: PeriodLabel
    target: Target
    category: Category
    amount: Amount
    currency: CurrencyCode
    note: Note = Field(description=f"Why; required, at most {NOTE_MAX} characters")
    author: Name = Field(description="Who adjusted (keys do not name people yet)")


class Recorded(BaseModel):
    """What the server adds to every row: its id, the period's dates and who wrote it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    period: str
    period_start: date
    period_end: date = Field(description="Exclusive: the first day of the next period")
    currency: str
    author: str
    key_id: str = Field(description="The id of the API key that wrote it, never the key")
    recorded_at: datetime = Field(description="Server time; the latest row is the current one")


class CallOut(Recorded):
    rep_id: str
    commit: DecimalAmount | None
    best_case: DecimalAmount | None
    pipeline: DecimalAmount | None
    note: str | None


class AdjustmentOut(Recorded):
    target_kind: TargetKind
    target_id: str
    category: Category
    amount: DecimalAmount
    note: str


class CallPage(BaseModel):
    items: list[CallOut]
    next_cursor: str | None


class AdjustmentPage(BaseModel):
    items: list[AdjustmentOut]
    next_cursor: str | None


_RECORDED_COLUMNS = ("currency", "note", "author", "key_id", "recorded_at")
CALL_CSV_COLUMNS = (
    "id",
    "period",
    "period_start",
    "period_end",
    "rep_id",
    "commit",
    "best_case",
    "pipeline",
    *_RECORDED_COLUMNS,
)
ADJUSTMENT_CSV_COLUMNS = (
    "id",
    "period",
    "period_start",
    "period_end",
    "target_kind",
    "target_id",
    "category",
    "amount",
    *_RECORDED_COLUMNS,
)
"""The CSV columns, in an order BI tools may depend on: new ones go at the end."""
