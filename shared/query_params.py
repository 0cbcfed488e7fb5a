"""Query parameters table routes take alike (format, period), and how a table route declares
its answers, declared once so that every service documents and bounds them the same way."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from shared.problems import problem_responses

Format = Annotated[Literal["json", "csv"] | None, Query(description="csv for BI tools")]
_PERIOD_FORMS = "`2026-Q4`, `2026-11` or `FY2026`"
PeriodQuery = Annotated[str, Query(max_length=20, description=_PERIOD_FORMS)]
OptionalPeriodQuery = Annotated[str | None, Query(max_length=20, description=_PERIOD_FORMS)]

TABLE_RESPONSES = {200: {"content": {"text/csv": {}}}, **problem_responses(400, 422)}
"""A route answering a table: JSON or CSV, and a problem for bad input."""
