"""What GET /v1/forecast/accuracy answers: each snapshot's forecasts of each closed period
against the actual, and their summaries. Ratios are decimal strings with 4 places (0.0512
is 5.12 %), null where undefined (no actual, no periods)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import Number, PeriodOut


class ForecastOut(BaseModel):
    period: str
    snapshot_id: int
    as_of: datetime
    kind: str
    weeks_before_end: int = Field(description="Whole weeks from as_of to the period's end")
    group: str | None
    currency: str | None
    measure: str = Field(
        description="call_commit, adjustment_commit, commit_plus_closed or "
        "best_case_plus_commit_plus_closed"
    )
    forecast: Number
    actual: Number = Field(description="The period's closed won now")
    error: Number = Field(description="forecast - actual")
    error_pct: Number | None = Field(description="error / actual; null when actual is 0")


class SummaryOut(BaseModel):
    group: str | None
    currency: str | None
    measure: str
    weeks_before_end: int | None = Field(description="null: every snapshot, whatever horizon")
    periods: int = Field(description="How many periods the forecasts are of")
    forecasts: int = Field(description="How many forecasts (snapshots x periods) are measured")
    bias: Number | None = Field(
        description="Mean error_pct where defined (actual > 0): > 0 over-forecast, < 0 sandbagged"
    )
    wape: Number | None = Field(description="sum |error| / sum actual")
    hit_rate_5: Number | None = Field(
        description="Share of forecasts within ±5 % of actual (of an actual 0: exactly 0)"
    )
    hit_rate_10: Number | None = Field(
        description="Share of forecasts within ±10 % of actual (of an actual 0: exactly 0)"
    )


class AccuracyOut(BaseModel):
    from_period: str
    to_period: str
    group_by: GroupBy
    periods: list[PeriodOut] = Field(description="The closed periods of the range")
    forecasts: list[ForecastOut]
    summaries: list[SummaryOut]


FORECAST_CSV_COLUMNS = tuple(ForecastOut.model_fields)
SUMMARY_CSV_COLUMNS = tuple(SummaryOut.model_fields)
"""The CSV columns of each table, in an order BI tools may depend on."""
