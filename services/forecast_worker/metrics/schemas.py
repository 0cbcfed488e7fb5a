"""Pipeline metrics as the API answers them: one row per (group, currency), money and
ratios as decimal strings, null where a figure has nothing to measure.

CSV cannot nest, so `/v1/forecast/metrics` as CSV leaves out `stages`, and the stage list
has its own endpoint, `/v1/forecast/metrics/stages`, one row per (group, currency, stage)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel

from services.forecast_worker.metrics.repository import GroupBy


class StageOut(BaseModel):
    stage: str
    entered: int
    advanced: int
    conversion: Decimal | None
    median_days: Decimal | None


class MetricsRow(BaseModel):
    group: str | None
    """The rep, team, manager or region id; null for everything, or for no assignment."""
    currency: str | None
    won_count: int
    lost_count: int
    win_rate: Decimal | None
    win_rate_value: Decimal | None
    won_amount: Decimal
    avg_won_amount: Decimal | None
    cycle_days_median: Decimal | None
    cycle_days_mean: Decimal | None
    velocity: Decimal | None
    open_count: int
    created_count: int
    created_amount: Decimal
    stages: list[StageOut]


class MetricsOut(BaseModel):
    start: date
    end: date
    group_by: GroupBy | None
    rows: list[MetricsRow]


class StageRow(StageOut):
    group: str | None
    currency: str | None


class StagesOut(BaseModel):
    start: date
    end: date
    group_by: GroupBy | None
    rows: list[StageRow]


METRICS_CSV_COLUMNS = tuple(c for c in MetricsRow.model_fields if c != "stages")
STAGES_CSV_COLUMNS = ("group", "currency", *StageOut.model_fields)
