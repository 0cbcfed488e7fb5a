"""Read API over the effective-dated hierarchy: who sold for which team on a given day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.deps import ForecastReader, ReadSession
from services.forecast_worker.hierarchy import repository
from services.forecast_worker.hierarchy.schemas import (
    HIERARCHY_CSV_COLUMNS,
    AssignmentOut,
    HierarchyOut,
    RepHistory,
)
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import Format
from shared.tables import csv_response, wants_csv

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)


def _table(request: Request, fmt: str | None, rows: Sequence[AssignmentOut]) -> Response | None:
    if not wants_csv(request, fmt):
        return None
    return csv_response(HIERARCHY_CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)


@router.get(
    "/v1/forecast/hierarchy",
    response_model=HierarchyOut,
    summary="Every rep with its team, manager and region on a day",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_hierarchy(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    as_of: Annotated[date | None, Query(description="The day (ISO date); today if absent")] = None,
    format: Format = None,
) -> HierarchyOut | Response:
    day = as_of or datetime.now(UTC).date()
    rows = [AssignmentOut.model_validate(r) for r in await repository.hierarchy_as_of(db, at=day)]
    return _table(request, format, rows) or HierarchyOut(as_of=day, items=rows)


@router.get(
    "/v1/forecast/reps/{rep_id}/history",
    response_model=RepHistory,
    summary="Every version of a rep's assignment, oldest first",
    responses={**problem_responses(404), 200: {"content": {"text/csv": {}}}},
)
async def get_rep_history(
    request: Request, rep_id: str, _: ForecastReader, db: ReadSession, format: Format = None
) -> RepHistory | Response:
    history = await repository.rep_history(db, rep_id=rep_id)
    rows = [AssignmentOut.model_validate(r) for r in history]
    if not rows:
        raise Problem(404, f"No rep {rep_id!r}.")
    return _table(request, format, rows) or RepHistory(rep_id=rep_id, versions=rows)
