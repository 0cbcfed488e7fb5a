"""What the snapshots API takes and answers. A snapshot's rows are the roll-up's rows
(`RollupRow`), so a trend reads like a series of roll-ups."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.forecast_worker.calls.schemas import PeriodLabel
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import PeriodOut, RollupRow
from services.forecast_worker.snapshots.schedule import Every
from shared.values import UtcDatetime

Kind = Literal["weekly", "period_end", "on_demand", "backfill"]
MAX_BACKFILL_SLOTS = 400
"""A backfill takes at most this many instants in one request (a year of days)."""
MAX_TREND_PAGE = 1000
"""Snapshots per page of the trend: a daily backfill of a year by rep is 365 snapshots of
a row per rep, so the trend is paged by whole snapshots."""


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: PeriodLabel
    as_of: Annotated[
        UtcDatetime | None,
        Field(description="A past instant to freeze (a backfill); absent: now"),
    ] = None


class BackfillIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    period: PeriodLabel
    from_: date = Field(alias="from", description="First day (UTC), included")
    to: date = Field(description="Last day (UTC), included; not after today")
    every: Every = Field("week", description="`week`: the weekly snapshot's weekday; `day`")


class SnapshotHeader(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    as_of: datetime = Field(description="The instant frozen (for a backfill, not taken_at)")
    kind: Kind
    taken_by: str = Field(description="The API key's id, or `scheduler`")
    taken_at: datetime


class SnapshotOut(SnapshotHeader):
    period: PeriodOut
    rows: dict[GroupBy, list[RollupRow]] = Field(
        description="Per grouping asked for (all four unless group_by), the roll-up's rows"
    )


class TrendPoint(SnapshotHeader):
    rows: list[RollupRow]


class Trend(BaseModel):
    period: PeriodOut
    group_by: GroupBy
    snapshots: list[TrendPoint] = Field(description="In order of as_of, then id")
    next_cursor: str | None = Field(description="The next page's `cursor`; null on the last page")


class BackfillOut(BaseModel):
    period: PeriodOut
    taken: list[SnapshotHeader] = Field(description="The snapshots this request took")
    already_taken: list[datetime] = Field(
        description="Instants of the range the period already had a snapshot of"
    )


TREND_CSV_COLUMNS = (
    "snapshot_id",
    "as_of",
    "kind",
    "taken_by",
    "taken_at",
    "group_by",
    *RollupRow.model_fields,
)
"""Snapshots in long format, one line per (snapshot, grouping, group, currency): new columns go at
the end."""
