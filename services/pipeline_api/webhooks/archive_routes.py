"""The archive of webhook requests: list and read them (audit), and read them again (replay).

Every authenticated delivery is archived as it arrived. Replay parses archived bodies with
today's parsers and the source's current settings and ingests the result as the endpoint
would, without archiving again: events already stored come back as duplicates, changes
already parked are not parked twice, and what a fixed parser or mapping can now read is
stored. Use it after a parser fix, or to re-drive deliveries whose events were lost
downstream of the log.
"""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.accounts.merges import AliasCache
from services.pipeline_api.deps import AliasCacheDep, EventLog, MaxFuture, ReadSession, Sessions
from services.pipeline_api.events.event_log import EventLogWriter
from services.pipeline_api.sources.repository import list_sources
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks import repository
from services.pipeline_api.webhooks.deliveries import DeliveryKind, parse_delivery
from services.pipeline_api.webhooks.ingest import IngestOutcome, ingest
from services.pipeline_api.webhooks.schemas import (
    ArchivedRequest,
    ArchivedRequestPage,
    ArchivedRequestWithBody,
    ReplayFailure,
    ReplayRequestsIn,
    ReplayRequestsOut,
    WebhookResult,
)
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses, storage_unavailable
from shared.tables import decode_id_cursor, next_cursor
from shared.values import Id64

router = APIRouter(prefix="/v1/webhook-requests", tags=["operations"], route_class=GuardedRoute)
_log = logging.getLogger("salesops.archive")


@router.get(
    "", response_model=ArchivedRequestPage, summary="Archived webhook requests, oldest first"
)
async def list_requests(
    _: auth.Admin,
    session: ReadSession,
    source_id: str | None = None,
    kind: DeliveryKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> ArchivedRequestPage:
    after = decode_id_cursor(cursor)
    rows = await repository.list_requests(
        session, source_id=source_id, kind=kind, after=after, limit=limit
    )
    items = [ArchivedRequest.model_validate(r, from_attributes=True) for r in rows]
    return ArchivedRequestPage(items=items, next_cursor=next_cursor(rows, limit, "id"))


@router.get(
    "/{request_id}",
    response_model=ArchivedRequestWithBody,
    summary="One archived request, body included (UTF-8 text, else base64)",
    responses=problem_responses(404),
)
async def get_request(
    _: auth.Admin, request_id: Annotated[Id64, Path()], session: ReadSession
) -> ArchivedRequestWithBody:
    row = await repository.get_request(session, request_id=request_id)
    if row is None:
        raise Problem(404, f"No archived webhook request {request_id}.")
    body = bytes(row.body)
    meta = {
        "id": row.id,
        "source_id": row.source_id,
        "kind": row.kind,
        "received_at": row.received_at,
        "headers": row.headers,
        "size": len(body),
        "ignored": row.ignored,
    }
    try:
        return ArchivedRequestWithBody(**meta, body=body.decode(), body_encoding="utf-8")
    except UnicodeDecodeError:
        return ArchivedRequestWithBody(
            **meta, body=base64.b64encode(body).decode(), body_encoding="base64"
        )


@router.post(
    "/replay",
    response_model=ReplayRequestsOut,
    summary="Read archived requests again with today's parsers and mappings",
    description=(
        "Stored events come back as duplicates and changes already parked are not parked "
        "again; re-syncs the deliveries asked for (gaps, merges, overflows) are queued again, "
        "since a replay is meant to re-drive them."
    ),
    responses=problem_responses(404, 503),
)
async def replay_requests(
    _: auth.Admin,
    body: ReplayRequestsIn,
    sessions: Sessions,
    writer: EventLog,
    aliases: AliasCacheDep,
    max_future: MaxFuture,
) -> ReplayRequestsOut:
    try:
        async with sessions() as session:
            ids = await repository.request_ids_to_replay(
                session,
                ids=body.ids,
                source_id=body.source_id,
                after=body.after_id,
                limit=len(body.ids) if body.ids is not None else body.limit,
            )
            sources = {s.id: s for s in await list_sources(session)}
    except Exception as exc:
        raise storage_unavailable("nothing was replayed") from exc
    missing = sorted(set(body.ids or ()) - set(ids))
    if missing:
        raise Problem(404, f"No archived webhook requests {missing[:20]}.")
    outcomes: list[IngestOutcome] = []
    failed: list[ReplayFailure] = []
    for request_id in ids:
        try:
            outcome = await _replay_one(
                sessions,
                writer=writer,
                aliases=aliases,
                sources=sources,
                request_id=request_id,
                ahead=max_future,
            )
        except ReplayRefused as refused:
            failed.append(ReplayFailure(id=request_id, reason=str(refused)))
            continue
        except Exception as exc:  # what was replayed so far stays stored; retry the rest
            _log.exception("replay of webhook request %s failed", request_id)
            raise storage_unavailable(f"requests before {request_id} were replayed") from exc
        outcomes.append(outcome)
    full_page = body.source_id is not None and len(ids) == body.limit
    return ReplayRequestsOut(
        **WebhookResult.of(outcomes).model_dump(),
        requests=len(ids),
        failed=failed,
        next_after_id=ids[-1] if full_page else None,
    )


class ReplayRefused(Exception):
    """This request cannot be replayed (its source is gone, its body unreadable)."""


async def _replay_one(
    sessions: async_sessionmaker[AsyncSession],
    *,
    writer: EventLogWriter,
    aliases: AliasCache,
    sources: dict[str, SourceIn],
    request_id: int,
    ahead: timedelta,
) -> IngestOutcome:
    async with sessions() as session:
        row = await repository.get_request(session, request_id=request_id)
    if row is None:
        raise ReplayRefused("deleted while the replay ran")
    source = sources.get(row.source_id or "")
    if source is None:
        raise ReplayRefused(f"source {row.source_id!r} is gone")
    body = bytes(row.body)
    try:
        changes = parse_delivery(row.kind, source=source, body=body)
    except ValueError as exc:
        raise ReplayRefused(f"unreadable: {exc}") from exc
    return await ingest(
        sessions=sessions,
        writer=writer,
        source=source,
        kind=row.kind,
        headers=row.headers,
        body=body,
        changes=changes,
        max_future=ahead,
        alias_cache=aliases,
        replay_of=row.id,
    )
