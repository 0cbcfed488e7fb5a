"""What the projection answers: one row per (group, currency) and one company row per
currency, money and rates as decimal strings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.forecast_worker.projection.repository import Due
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import Number, PeriodOut

RateSource = Literal["own", "company"]


class RateOut(BaseModel):
    stage: str | None
    due: Due = Field(description="Where the open deals' close date lies against the period")
    open_amount: Number = Field(description="Open pipeline now in this stage and due bucket")
    rate: Number | None = Field(description="null: no history anywhere; the amount is unprojected")
    rate_source: RateSource | None = Field(
        description="`own`: the row's own history; `company`: the group had none, so the "
        "company's rate in the currency is used; null: no history anywhere"
    )
    projected: Number | None = Field(description="open_amount x rate, to the cent")


class ProjectionRow(BaseModel):
    scope: Literal["group", "company"]
    group: str | None = Field(description="null on company rows, or for unassigned owners")
    currency: str | None
    closed_won: Number
    from_pipeline: Number
    expected_new: Number
    unprojected: Number
    projected: Number = Field(description="closed_won + from_pipeline + expected_new")
    bottom_up_commit: Number = Field(description="The roll-up's commit_plus_closed")
    bottom_up_best_case: Number = Field(
        description="The roll-up's best_case_plus_commit_plus_closed"
    )
    gap: Number = Field(description="projected - bottom_up_commit")
    gap_best_case: Number = Field(description="projected - bottom_up_best_case")
    open_pipeline: Number = Field(description="All open deals now, whatever their close date")
    rates: list[RateOut] = Field(description="JSON only: the CSV has the flat columns")


class Projection(BaseModel):
    period: PeriodOut
    group_by: GroupBy
    as_of: datetime | None = Field(description="null: projected from the deals as they are now")
    point: datetime = Field(description="The instant projected from (as_of or now)")
    elapsed_days: Number = Field(
        description="How far into the period that instant is, clamped to the period"
    )
    lookback_periods: list[str] = Field(description="The past periods learnt from, latest first")
    rows: list[ProjectionRow]


CSV_COLUMNS = tuple(name for name in ProjectionRow.model_fields if name != "rates")
"""The CSV columns, in an order BI tools may depend on: new ones go at the end."""
