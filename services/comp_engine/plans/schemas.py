"""The plan, assignment and FX-rate shapes of the comp API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.comp_engine.plans.document import PlanDocument
from shared.money import CurrencyCode, DecimalAmount


class PlanVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: date = Field(description="The version supersedes the one before from here.")
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
    start: date
    end: date | None = Field(default=None, description="Exclusive; omitted while open-ended.")
    payout_currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AssignmentOut(AssignmentIn):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    id: int
    created_by: str
    created_at: datetime


class FxRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: CurrencyCode
    quote: CurrencyCode
    day: date
    rate: DecimalAmount = Field(gt=0, description="1 base = rate quote.")


class FxRatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[FxRateIn] = Field(min_length=1, max_length=10_000)
