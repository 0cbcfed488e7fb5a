"""Parked CRM changes (the intake DLQ): what could not become events, and why; mapped
again on demand, once a mapping was added or a parser fixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.pipeline_api.deps import EventLog, MaxFuture, ReadSession, Sessions
from services.pipeline_api.webhooks import repository
from services.pipeline_api.webhooks.ingest import replay_parked
from services.pipeline_api.webhooks.schemas import ParkedOut, ParkedPage, ReplayIn, ReplayOut
from shared import auth
from shared.edge import GuardedRoute
from shared.tables import decode_id_cursor, next_cursor

router = APIRouter(tags=["sources"], route_class=GuardedRoute)


@router.get(
    "/v1/dlq",
    response_model=ParkedPage,
    tags=["operations"],
    summary="CRM changes that could not become events, with the reason",
)
async def list_dlq(
    _: auth.Admin,
    session: ReadSession,
    source_id: str | None = None,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> ParkedPage:
    after = decode_id_cursor(cursor)
    rows = await repository.list_parked(
        session,
        source_id=source_id,
        after=after,
        limit=limit,
        include_replayed=include_replayed,
    )
    items = [ParkedOut.model_validate(r, from_attributes=True) for r in rows]
    return ParkedPage(items=items, next_cursor=next_cursor(rows, limit, "id"))


@router.post(
    "/v1/dlq/replay",
    response_model=ReplayOut,
    tags=["operations"],
    summary="Map parked changes again (after a mapping was added)",
)
async def replay_dlq(
    _: auth.Admin,
    sessions: Sessions,
    writer: EventLog,
    max_future: MaxFuture,
    body: ReplayIn | None = None,
) -> ReplayOut:
    outcome = await replay_parked(
        sessions=sessions,
        writer=writer,
        max_future=max_future,
        source_id=body.source_id if body else None,
        ids=body.ids if body else None,
    )
    return ReplayOut(
        replayed=outcome.replayed,
        still_parked=outcome.still_parked,
        duplicates=outcome.duplicates,
        settled=outcome.settled,
    )
