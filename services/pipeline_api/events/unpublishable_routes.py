"""Events the relay set aside because the broker refused them for their own sake.

Such an event is stored and acknowledged but not on Kafka: listing them is how an operator
learns of them (`salesops_relay_unpublishable_total` counts them as they happen,
`salesops_relay_unpublishable_events` says how many are set aside now), and
replaying puts them back in the relay's queue once whatever refused them is fixed. A
replayed event that is refused again is set aside again with its new error.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.pipeline_api.deps import ReadSession, RelayDep, WriteSession
from services.pipeline_api.events import repository
from services.pipeline_api.events.schemas import (
    ReplayUnpublishableIn,
    ReplayUnpublishableOut,
    UnpublishableEvent,
    UnpublishablePage,
)
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.tables import decode_id_cursor, next_cursor

router = APIRouter(prefix="/v1/events/unpublishable", tags=["operations"], route_class=GuardedRoute)


@router.get(
    "",
    response_model=UnpublishablePage,
    summary="Stored events the broker refused, in log order",
    responses=problem_responses(503),
)
async def list_unpublishable(
    _: auth.Admin,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> UnpublishablePage:
    rows = await repository.list_unpublishable(session, after=decode_id_cursor(cursor), limit=limit)
    items = [UnpublishableEvent.model_validate(r, from_attributes=True) for r in rows]
    return UnpublishablePage(items=items, next_cursor=next_cursor(rows, limit, "seq"))


@router.post(
    "/replay",
    response_model=ReplayUnpublishableOut,
    summary="Hand unpublishable events back to the relay",
    responses=problem_responses(404, 422, 503),
    description=(
        'Give `seqs`, or `{"all": true}` for every one. Use once what refused them is '
        "fixed. Each goes out after the events that passed it; one refused again is listed "
        "again with its new error."
    ),
)
async def replay_unpublishable(
    _: auth.Admin, body: ReplayUnpublishableIn, session: WriteSession, relay: RelayDep
) -> ReplayUnpublishableOut:
    replayed = await repository.hand_back_unpublishable(session, seqs=body.seqs)
    missing = sorted(set(body.seqs or ()) - replayed)
    if missing:
        raise Problem(404, f"No unpublishable events with seq {missing[:20]}.")
    await session.commit()  # before waking the relay, so it finds them
    relay.wake()
    return ReplayUnpublishableOut(replayed=len(replayed))
