"""Query parameters table routes take alike (format, period, page), and how a table route declares
its answers, declared once so that every service documents and bounds them the same way."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from shared.problems import problem_responses

Format = Annotated[Literal["json", "csv"] | None, Query(description="csv for BI tools")]
_PERIOD_FORMS = "`2026-Q4`, `2026-11` or `FY2026`"
PeriodQuery = Annotated[str, Query(max_length=20, description=_PERIOD_FORMS)]
OptionalPeriodQuery = Annotated[str | None, Query(max_length=20, description=_PERIOD_FORMS)]

CursorQuery = Annotated[
    str | None, Query(max_length=1000, description="`next_cursor` of the page before")
]
"""Where a cursor-paged list goes on; a forged cursor answers 400."""
PageLimit = Annotated[int, Query(ge=1, le=1000, description="Rows per page, at most 1000")]

TABLE_RESPONSES = {200: {"content": {"text/csv": {}}}, **problem_responses(400, 422)}
"""A route answering a table: JSON or CSV, and a problem for bad input."""
