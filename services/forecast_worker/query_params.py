"""Query parameters the forecast routes take alike, declared once so that every route
documents and bounds them the same way."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

Format = Annotated[Literal["json", "csv"] | None, Query(description="csv for BI tools")]
_PERIOD_FORMS = "`2026-Q4`, `2026-11` or `FY2026`"
PeriodQuery = Annotated[str, Query(max_length=20, description=_PERIOD_FORMS)]
OptionalPeriodQuery = Annotated[str | None, Query(max_length=20, description=_PERIOD_FORMS)]
