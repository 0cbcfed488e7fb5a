"""The inspection as the API answers it: one row per (deal, rule) it breaks, each with a
reason a person can act on; CSV carries the same columns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel


class InspectionRow(BaseModel):
    deal_id: str
    owner_id: str | None
    stage: str | None
    rule: str
    """stuck, pushed, missing_fields or past_close_date."""
    reason: str


class InspectionOut(BaseModel):
    as_of_date: date
    stuck_factor: Decimal
    max_pushes: int
    rows: list[InspectionRow]
    next_cursor: str | None


INSPECTION_CSV_COLUMNS = tuple(InspectionRow.model_fields)
