"""What the roll-up answers: one row per (group, currency), money and ratios as decimal
strings, a ratio null where it is undefined."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer

from services.forecast_worker.rollup.grouping import GroupBy
from shared.money import number_text

Number = Annotated[Decimal, PlainSerializer(number_text, return_type=str, when_used="json")]
"""Output only: computed sums are exact but not bounded like an amount a client sends."""


class PeriodOut(BaseModel):
    label: str
    start: date
    end: date = Field(description="Exclusive: the first day of the next period")


class RollupRow(BaseModel):
    group: str | None = Field(description="null: deals whose owner has no assignment that day")
    currency: str | None
    closed_won: Number
    commit: Number
    best_case: Number
    pipeline: Number
    omitted: Number
    commit_plus_closed: Number
    best_case_plus_commit_plus_closed: Number
    weighted: Number = Field(description="Open deals' amount x their stage's probability / 100")
    open_count: int
    unmapped: Number = Field(description="Open deals whose stage the configuration lacks")
    unmapped_count: int
    quota: Number | None
    attainment: Number | None
    gap_to_quota: Number | None
    coverage: Number | None = Field(description="(quota - closed_won) / open pipeline")
    call_commit: Number | None = None
    call_best_case: Number | None = None
    call_pipeline: Number | None = None
    call_author: str | None = None
    call_recorded_at: datetime | None = None
    adjustment_commit: Number | None = None
    adjustment_best_case: Number | None = None
    adjustment_pipeline: Number | None = None


class Rollup(BaseModel):
    period: PeriodOut
    group_by: GroupBy
    as_of: datetime | None = Field(description="null: the live roll-up")
    rows: list[RollupRow]


CSV_COLUMNS = tuple(RollupRow.model_fields)
"""The CSV columns, in an order BI tools may depend on: new ones go at the end."""
