"""Where the forecast configuration is stored: one settings row and one row per stage.

Rows rather than one JSON document, so that SQL over deals can join a deal's stage to its
probability and category. A pipeline exists through its stages (it has at least one).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, Integer, Numeric, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.forecast_worker.models import ForecastBase


class ForecastSettings(ForecastBase):
    """The single row of document-wide settings; its absence means "never configured"."""

    __tablename__ = "forecast_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("fiscal_year_start_month BETWEEN 1 AND 12", name="start_month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fiscal_year_start_month: Mapped[int] = mapped_column(Integer)
    default_pipeline: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    """The document's version: the worker's stage cache and its dead-letter replay key on it."""
    replayed_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The version whose dead-letter replay last finished (`config.replays`); behind
    `updated_at` while the letters a new document may mend wait to be replayed."""


class StageConfig(ForecastBase):
    __tablename__ = "stage_config"
    __table_args__ = (CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),)

    pipeline: Mapped[str] = mapped_column(Text, primary_key=True)
    stage: Mapped[str] = mapped_column(Text, primary_key=True)
    pipeline_position: Mapped[int] = mapped_column(Integer)
    """The pipeline's place in the document, so that it is answered as it was given."""
    stage_order: Mapped[int] = mapped_column(Integer)
    probability: Mapped[Decimal] = mapped_column(Numeric)
    forecast_category: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    required_fields: Mapped[list[str]] = mapped_column(ARRAY(Text))
