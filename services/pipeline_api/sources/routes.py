"""Sources (connected CRM accounts) and their re-sync jobs."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy.ext.asyncio import AsyncSession

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
from services.pipeline_api.resync.repository import add_resync_job, get_resync_job
from services.pipeline_api.sources import repository
from services.pipeline_api.sources.schemas import ResyncIn, ResyncJobOut, SourceIn, SourceOut
from services.pipeline_api.webhooks.ingest import replay_parked
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses
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
    source = await repository.get_source(session, source_id=source_id)
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
    session: WriteSession,
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
    stored = await repository.get_source_for_update(session, source_id=source_id)
    source = _keep_secrets(body, stored)
    try:
        created = await repository.upsert_source(session, source=source)
    except repository.SourceConflict as exc:
        raise Problem(
            409, f"Another source already has {body.kind} account {body.account_id!r}."
        ) from exc
    await session.commit()  # before the cache forgets it and the replay reads it
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
    if not await repository.delete_source(session, source_id=source_id):
        raise Problem(404, f"No source {source_id!r}.")
    await session.commit()  # before the cache forgets it, so no reload finds it again
    cache.invalidate()
    return Response(status_code=204)


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
    if await repository.get_source(session, source_id=source_id) is None:
        raise Problem(404, f"No source {source_id!r}.")
    job_id = await add_resync_job(
        session,
        source_id=source_id,
        crm_ids=(body.deal_ids if body else []),
        reason="requested through the API",
    )
    await session.commit()  # before the worker wakes to look for it
    wake.set()
    return await _job(session, source_id=source_id, job_id=job_id)


@router.get(
    "/v1/sources/{source_id}/resync/{job_id}",
    response_model=ResyncJobOut,
    responses=problem_responses(404),
)
async def get_resync(
    source_id: str, job_id: Annotated[Id64, Path()], _: auth.Admin, session: ReadSession
) -> ResyncJobOut:
    return await _job(session, source_id=source_id, job_id=job_id)


async def _job(session: AsyncSession, *, source_id: str, job_id: int) -> ResyncJobOut:
    job = await get_resync_job(session, job_id=job_id)
    if job is None or job.source_id != source_id:
        raise Problem(404, f"No re-sync job {job_id} for source {source_id!r}.")
    return ResyncJobOut.model_validate(job, from_attributes=True)
