"""Plans as data: the schema, versions, assignments to reps, and FX rates (comp admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.comp_engine.access import reps_asked
from services.comp_engine.deps import CompAdmin, CompReader, ReadSession, Visible, WriteSession
from services.comp_engine.plans import repository
from services.comp_engine.plans.document import PlanDocument
from services.comp_engine.plans.schemas import (
    ASSIGNMENT_CSV_COLUMNS,
    AssignmentIn,
    AssignmentOut,
    AssignmentPage,
    FxRatesIn,
    PlanOut,
    PlanVersionIn,
    PlanVersionOut,
)
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, CursorQuery, Format, PageLimit
from shared.tables import csv_response, decode_text_date_id_cursor, next_cursor, wants_csv
from shared.yaml_bodies import yaml_request_body

router = APIRouter(tags=["comp"], route_class=GuardedRoute)

PlanId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("/v1/comp/plan-schema", summary="The JSON Schema every plan document follows")
async def plan_schema(_: CompReader) -> dict[str, Any]:
    return PlanDocument.model_json_schema()


@router.post(
    "/v1/comp/plans/{plan_id}/versions",
    status_code=201,
    response_model=PlanVersionOut,
    summary="Add a plan version, effective from its date (a new plan is its version 1)",
    description="The body is JSON, or the same document in YAML (`Content-Type: "
    "application/yaml`, `application/x-yaml` or `text/yaml`).",
    responses=problem_responses(422),
    openapi_extra=yaml_request_body(),
)
async def add_version(
    plan_id: PlanId, body: PlanVersionIn, principal: CompAdmin, db: WriteSession
) -> PlanVersionOut:
    row = await repository.add_version(
        db,
        plan_id=plan_id,
        effective_from=body.effective_from,
        document=body.document.model_dump(mode="json", by_alias=True),
        author=principal.key_id,
    )
    return PlanVersionOut.model_validate(row)


@router.get(
    "/v1/comp/plans/{plan_id}",
    response_model=PlanOut,
    summary="A plan's versions, oldest first",
    responses=problem_responses(404),
)
async def get_plan(plan_id: PlanId, _: CompReader, db: ReadSession) -> PlanOut:
    rows = await repository.versions(db, plan_id=plan_id)
    if not rows:
        raise Problem(404, f"No plan {plan_id!r}.")
    return PlanOut(plan_id=plan_id, versions=[PlanVersionOut.model_validate(r) for r in rows])


@router.post(
    "/v1/comp/assignments",
    status_code=201,
    response_model=AssignmentOut,
    summary="Put a rep on a plan for a date range (one rep's ranges never overlap)",
    responses=problem_responses(404, 409, 422),
)
async def add_assignment(
    body: AssignmentIn, principal: CompAdmin, db: WriteSession
) -> AssignmentOut:
    if not await repository.versions(db, plan_id=body.plan_id):
        raise Problem(404, f"No plan {body.plan_id!r}: add its first version before assigning it.")
    clash = await repository.overlapping(db, rep_id=body.rep_id, start=body.start, end=body.end)
    if clash is not None:
        until = clash.end.isoformat() if clash.end else "open-ended"
        raise Problem(
            409,
            f"Rep {body.rep_id!r} is already on plan {clash.plan_id!r} from "
            f"{clash.start.isoformat()} ({until}, assignment {clash.id}): end that assignment "
            "before this one starts, or start this one after it ends.",
        )
    row = await repository.add_assignment(db, values=body.model_dump(), author=principal.key_id)
    return AssignmentOut.model_validate(row)


@router.get(
    "/v1/comp/assignments",
    response_model=AssignmentPage,
    summary="Assignments, by rep then start",
    responses=TABLE_RESPONSES,
)
async def list_assignments(
    request: Request,
    visible: Visible,
    db: ReadSession,
    rep_id: Annotated[str | None, Query(max_length=256)] = None,
    limit: PageLimit = 100,
    cursor: CursorQuery = None,
    format: Format = None,
) -> BaseModel | Response:
    rows = await repository.assignments(
        db,
        rep_ids=reps_asked(visible, rep_id, "assignments"),
        after=decode_text_date_id_cursor(cursor),
        limit=limit,
    )
    items = [AssignmentOut.model_validate(r) for r in rows]
    following = next_cursor(rows, limit, "rep_id", "start", "id")
    if wants_csv(request, format):
        return csv_response(
            ASSIGNMENT_CSV_COLUMNS, (i.model_dump(mode="json") for i in items), following
        )
    return AssignmentPage(items=items, next_cursor=following)


@router.put(
    "/v1/comp/fx-rates",
    summary="Add or correct dated FX rates (1 base = rate quote, from that day on)",
    responses=problem_responses(422),
)
async def put_rates(body: FxRatesIn, _: CompAdmin, db: WriteSession) -> dict[str, int]:
    count = await repository.put_rates(db, rates=[r.model_dump() for r in body.rates])
    return {"rates": count}
