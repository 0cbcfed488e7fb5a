"""Sources (connected CRM accounts), their re-sync jobs, and the intake dead-letter queue."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api import repository
from services.pipeline_api.crm.outbound import OutboundRefused
from services.pipeline_api.deps import (
    EventLog,
    MaxFuture,
    Outbound,
    ReadSession,
    ResyncWake,
    Sessions,
    SourceCacheDep,
    WriteSession,
)
from services.pipeline_api.sources.schemas import SourceIn, SourceOut
from services.pipeline_api.webhooks.ingest import replay_parked
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
from shared.tables import decode_id_cursor, next_cursor
from shared.values import Id64

router = APIRouter(tags=["sources"], route_class=GuardedRoute)
_log = logging.getLogger("salesops.sources")


def _keep_secrets(incoming: SourceIn, stored: SourceIn | None) -> SourceIn:
    """Secrets are write-only: a PUT without them keeps the stored ones."""
    if stored is None:
        return incoming
    secrets = incoming.secrets.model_copy(
        update={
            "current": incoming.secrets.current or stored.secrets.current,
            "previous": incoming.secrets.previous or stored.secrets.previous,
            "basic_user": incoming.secrets.basic_user or stored.secrets.basic_user,
        }
    )
    # Stored credentials are only ever sent where they were sent before: a PUT that points
    # them elsewhere must supply them again, so no admin can redirect them to another host.
    api_token = incoming.api_token
    if api_token is None and incoming.api_base_url == stored.api_base_url:
        api_token = stored.api_token
    oauth = incoming.oauth
    if (
        oauth is not None
        and stored.oauth is not None
        and (oauth.client_id, oauth.token_url) == (stored.oauth.client_id, stored.oauth.token_url)
        and incoming.api_base_url == stored.api_base_url
    ):
        oauth = oauth.model_copy(
            update={
                "client_secret": oauth.client_secret or stored.oauth.client_secret,
                "refresh_token": oauth.refresh_token or stored.oauth.refresh_token,
            }
        )
    return incoming.model_copy(
        update={
            "secrets": secrets,
            "api_token": api_token,
            "oauth": oauth,
        }
    )


@router.get("/v1/sources", response_model=list[SourceOut], summary="Connected CRM accounts")
async def list_sources(_: auth.Admin, session: ReadSession) -> list[SourceOut]:
    return [SourceOut.of(s) for s in await repository.list_sources(session)]


@router.get("/v1/sources/{source_id}", response_model=SourceOut, responses=problem_responses(404))
async def get_source(source_id: str, _: auth.Admin, session: ReadSession) -> SourceOut:
    source = await repository.get_source(session, source_id)
    if source is None:
        raise Problem(404, f"No source {source_id!r}.")
    return SourceOut.of(source)


@router.put(
    "/v1/sources/{source_id}",
    response_model=SourceOut,
    summary="Create or replace a source",
    responses={
        201: {"model": SourceOut, "description": "Created"},
        **problem_responses(409),
    },
    description="Secrets are write-only; omitted ones are kept. Parked changes of this source "
    "are replayed right after, so a newly added mapping takes effect at once. `api_base_url` "
    "and `oauth.token_url` must be https URLs of the source's own CRM (or of a host in "
    "SALESOPS_OUTBOUND_ALLOWED_HOSTS) that resolve to public addresses; otherwise 422.",
)
async def put_source(
    source_id: str,
    body: SourceIn,
    response: Response,
    _: auth.Admin,
    sessions: Sessions,
    writer: EventLog,
    cache: SourceCacheDep,
    outbound: Outbound,
    max_future: MaxFuture,
) -> SourceOut:
    if body.id != source_id:
        raise Problem(422, f"The body's id {body.id!r} differs from the path's {source_id!r}.")
    try:
        await outbound.verify_source(body)
    except OutboundRefused as exc:
        raise Problem(422, f"The source's re-sync URLs are not allowed: {exc}") from exc
    async with sessions() as session, session.begin():
        stored = await repository.get_source_for_update(session, source_id)
        source = _keep_secrets(body, stored)
        try:
            created = await repository.upsert_source(session, source)
        except Exception as exc:  # the (kind, account_id) pair belongs to another source
            if "uq_sources_kind_account_id" in str(exc):
                raise Problem(
                    409, f"Another source already has {body.kind} account {body.account_id!r}."
                ) from exc
            raise
    cache.invalidate()
    response.status_code = 201 if created else 200
    await replay_parked(
        sessions=sessions,
        writer=writer,
        max_future=max_future,
        source_id=source_id,
    )
    return SourceOut.of(source)


@router.delete(
    "/v1/sources/{source_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
)
async def delete_source(
    source_id: str, _: auth.Admin, session: WriteSession, cache: SourceCacheDep
) -> Response:
    if not await repository.delete_source(session, source_id):
        raise Problem(404, f"No source {source_id!r}.")
    await session.commit()  # before the cache forgets it, so no reload finds it again
    cache.invalidate()
    return Response(status_code=204)


class ResyncIn(BaseModel):
    deal_ids: list[str] = Field(
        default_factory=list, description="CRM deal ids; empty means every deal of the source"
    )


class ResyncJobOut(BaseModel):
    id: int
    source_id: str
    crm_ids: list[str]
    reason: str
    status: str
    progress: int
    error: str | None
    created_at: datetime
    updated_at: datetime


@router.post(
    "/v1/sources/{source_id}/resync",
    status_code=202,
    response_model=ResyncJobOut,
    summary="Fetch deals from the CRM's API (all, or the given ones)",
    responses=problem_responses(404),
)
async def request_resync(
    source_id: str,
    _: auth.Admin,
    session: WriteSession,
    wake: ResyncWake,
    body: ResyncIn | None = None,
) -> ResyncJobOut:
    if await repository.get_source(session, source_id) is None:
        raise Problem(404, f"No source {source_id!r}.")
    job_id = await repository.add_resync_job(
        session,
        source_id=source_id,
        crm_ids=(body.deal_ids if body else []),
        reason="requested through the API",
    )
    await session.commit()  # before the worker wakes to look for it
    wake.set()
    return await _job(session, source_id, job_id)


@router.get(
    "/v1/sources/{source_id}/resync/{job_id}",
    response_model=ResyncJobOut,
    responses=problem_responses(404),
)
async def get_resync(
    source_id: str, job_id: Annotated[Id64, Path()], _: auth.Admin, session: ReadSession
) -> ResyncJobOut:
    return await _job(session, source_id, job_id)


async def _job(session: AsyncSession, source_id: str, job_id: int) -> ResyncJobOut:
    job = await repository.get_resync_job(session, job_id)
    if job is None or job.source_id != source_id:
        raise Problem(404, f"No re-sync job {job_id} for source {source_id!r}.")
    return ResyncJobOut.model_validate(job, from_attributes=True)


class ParkedOut(BaseModel):
    id: int
    source_id: str
    request_id: int | None
    reason: str
    replayable: bool
    change: dict[str, Any]
    created_at: datetime
    replayed_at: datetime | None


class ParkedPage(BaseModel):
    items: list[ParkedOut]
    next_cursor: str | None


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


class ReplayIn(BaseModel):
    source_id: str | None = None
    ids: list[Id64] | None = None


class ReplayOut(BaseModel):
    replayed: int = Field(description="Stored in the event log, or queued as a re-sync job.")
    still_parked: int
    duplicates: int
    settled: int = Field(
        description="Left the DLQ with nothing to store: they change nothing kept today."
    )


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
