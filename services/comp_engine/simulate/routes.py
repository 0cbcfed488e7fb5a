"""POST /v1/comp/simulate: a draft plan (or a change to a live one) run without writing
anything, over deals given inline (any worked example, checkable by hand) or over the
stored deals of a date range against the reps' current plans. A body over the API's cap
(SALESOPS_API_MAX_BODY_BYTES) is refused with 413 while it streams in, before any work;
a YAML body is held to the same cap before it is parsed (`shared/yaml_bodies.py`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter

from services.comp_engine.calc.engine import compute
from services.comp_engine.deals.history import StageNames
from services.comp_engine.deps import CompAdmin, ReadSession, State
from services.comp_engine.recalc import repository as recalc
from services.comp_engine.simulate import run
from services.comp_engine.simulate.schemas import SimulateIn, SimulateOut
from services.comp_engine.simulate.stored import simulate_stored
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.yaml_bodies import yaml_request_body

router = APIRouter(tags=["comp"], route_class=GuardedRoute)


@router.post(
    "/v1/comp/simulate",
    response_model=SimulateOut,
    summary="Run a plan document over inline or stored deals; nothing is written",
    description="The body is JSON, or the same document in YAML (`Content-Type: "
    "application/yaml`, `application/x-yaml` or `text/yaml`).",
    responses=problem_responses(413, 422),
    openapi_extra=yaml_request_body(),
)
async def simulate(body: SimulateIn, _: CompAdmin, db: ReadSession, state: State) -> SimulateOut:
    settings = state.settings
    names = StageNames.of(settings.won_stages, settings.lost_stages)
    today = body.today or datetime.now(UTC).date()
    version = run.draft(body)
    if body.inline is not None:
        histories, inputs = run.inline_inputs(body.inline, version, names)
        result = await asyncio.to_thread(compute, histories, inputs, today=today)
        return SimulateOut(
            lines=[run.line_json(line) for line in result.lines],
            reps=run.rep_totals(run.totals(result.lines), None),
            attainment_distribution=run.attainment_bands(result.lines),
            waiting=run.waiting_json(result.waiting),
        )
    assert body.stored is not None
    stored = body.stored
    if stored.to <= stored.from_:
        raise Problem(422, "body.stored.to must be after body.stored.from")
    # One snapshot for the whole simulation: each rep's ledger, dirty mark and deals are
    # read as of the same moment (`posted.py`).
    conn = await db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    assignments = await recalc.load_assignments(conn)
    reps = sorted(
        {
            a.rep_id
            for a in assignments
            if stored.compare_to_plan is None or a.plan_id == stored.compare_to_plan
        }
    )
    if stored.lines_for_rep is not None and stored.lines_for_rep not in reps:
        raise Problem(
            422,
            f"Rep {stored.lines_for_rep!r} is not among the reps simulated"
            + (f" (those on plan {stored.compare_to_plan!r})." if stored.compare_to_plan else "."),
            errors=[{"location": "body.stored.lines_for_rep", "message": "not simulated"}],
        )
    found = await simulate_stored(
        conn,
        version,
        reps=reps,
        names=names,
        today=today,
        start=stored.from_,
        end=stored.to,
        workers=state.simulate_workers,
        url=settings.database_url,
        lines_for=stored.lines_for_rep,
    )
    rows = run.rep_totals(found.simulated, found.current)
    difference: dict[str, Decimal] = {}
    for row in rows:
        difference[row.currency] = difference.get(row.currency, Decimal(0)) + (
            row.difference or Decimal(0)
        )
    return SimulateOut(
        lines=found.lines,
        reps=rows,
        attainment_distribution=dict(found.bands),
        waiting=run.waiting_json(found.waiting),
        total_difference=difference,
        current_from_ledger=found.from_ledger,
    )
