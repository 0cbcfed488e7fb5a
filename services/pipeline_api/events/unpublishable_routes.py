"""Events the relay set aside because the broker refused them for their own sake.

Such an event is stored and acknowledged but not on Kafka: listing them is how an operator
learns of them (`salesops_relay_unpublishable_total` counts them as they happen,
`salesops_relay_unpublishable_events` says how many are set aside now), and
replaying puts them back in the relay's queue once whatever refused them is fixed. A
replayed event that is refused again is set aside again with its new error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Text, func, select, update

from services.pipeline_api.deps import ReadSession, RelayDep, WriteSession
from services.pipeline_api.models import StoredEvent
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.tables import MAX_ID, decode_id_cursor, next_cursor

router = APIRouter(prefix="/v1/events/unpublishable", tags=["operations"], route_class=GuardedRoute)


class UnpublishableEvent(BaseModel):
    seq: int = Field(description="Position in the event log")
    source: str
    id: str
    type: str
    topic: str
    partition_key: str
    time: datetime
    received_at: datetime
    unpublishable_at: datetime
    error: str = Field(description="Why the broker refused it")
    size: int = Field(description="Bytes of the stored CloudEvent (JSON)")


class UnpublishablePage(BaseModel):
    items: list[UnpublishableEvent]
    next_cursor: str | None


class ReplayUnpublishableIn(BaseModel):
    """Which events: `seqs`, or `all`, said explicitly (an empty body replays nothing)."""

    seqs: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=1000, description="Which events, by seq"
    )
    all: bool = Field(False, description="Every unpublishable event (instead of `seqs`)")

    @model_validator(mode="after")
    def _one_choice(self) -> ReplayUnpublishableIn:
        if (self.seqs is None) == (not self.all):
            raise ValueError('give either "seqs" or "all": true')
        return self


class ReplayUnpublishableOut(BaseModel):
    replayed: int = Field(description="Events handed back to the relay")


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
    after = decode_id_cursor(cursor)
    query = (
        select(
            StoredEvent.seq,
            StoredEvent.source,
            StoredEvent.event_id.label("id"),
            StoredEvent.type,
            StoredEvent.topic,
            StoredEvent.partition_key,
            StoredEvent.event_time.label("time"),
            StoredEvent.received_at,
            StoredEvent.unpublishable_at,
            StoredEvent.unpublishable_error.label("error"),
            func.octet_length(StoredEvent.envelope.cast(Text)).label("size"),
        )
        .where(StoredEvent.unpublishable_at.is_not(None))
        .order_by(StoredEvent.seq)
        .limit(limit)
    )
    if after is not None:
        query = query.where(StoredEvent.seq > after)
    rows = (await session.execute(query)).all()
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
    statement = (
        update(StoredEvent)
        .where(StoredEvent.unpublishable_at.is_not(None))
        .values(unpublishable_at=None, unpublishable_error=None)
        .returning(StoredEvent.seq)
    )
    if body.seqs is not None:
        statement = statement.where(StoredEvent.seq.in_(body.seqs))
    replayed = set((await session.execute(statement)).scalars())
    missing = sorted(set(body.seqs or ()) - replayed)
    if missing:
        raise Problem(404, f"No unpublishable events with seq {missing[:20]}.")
    await session.commit()  # before waking the relay, so it finds them
    relay.wake()
    return ReplayUnpublishableOut(replayed=len(replayed))
