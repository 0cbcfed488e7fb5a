"""The plan, assignment and FX-rate shapes of the comp API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.comp_engine.plans.document import PlanDocument
from shared.money import CurrencyCode, DecimalAmount

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)
"""Dates a plan, an assignment or a rate may take: a calculation walks every period from an
assignment's start, so a date in year 1 or 9999 is a typo, refused, not millennia of work."""
CompDate = Annotated[date, Field(ge=EARLIEST, le=LATEST)]


class PlanVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: CompDate = Field(description="The version supersedes the one before from here.")
    document: PlanDocument


class PlanVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    plan_id: str
    version: int
    effective_from: date
    document: PlanDocument
    created_by: str
    created_at: datetime


class PlanOut(BaseModel):
    plan_id: str
    versions: list[PlanVersionOut]


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: str = Field(min_length=1, max_length=256)
    plan_id: str = Field(min_length=1, max_length=100)
    start: CompDate
    end: CompDate | None = Field(default=None, description="Exclusive; omitted while open-ended.")
    payout_currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


ASSIGNMENT_CSV_COLUMNS = (
    "id",
    "rep_id",
    "plan_id",
    "start",
    "end",
    "payout_currency",
    "created_by",
    "created_at",
)


class AssignmentOut(AssignmentIn):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: int
    created_by: str
    created_at: datetime


class AssignmentPage(BaseModel):
    items: list[AssignmentOut]
    next_cursor: str | None


class FxRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: CurrencyCode
    quote: CurrencyCode
    day: CompDate
    rate: DecimalAmount = Field(gt=0, description="1 base = rate quote.")


class FxRatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[FxRateIn] = Field(min_length=1, max_length=10_000)
