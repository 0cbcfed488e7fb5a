"""CRM webhook endpoints: authenticate, keep the raw body, parse, then ingest.

One route per `WebhookEndpoint` of the registry's adapters; this module keeps only the
HTTP: the body read within limits, the problem answers and `ingest`. No API key: each
endpoint authenticates by its CRM's own scheme (in the CRM's package), before the body is
read whenever the scheme allows, and a failure answers a bare 401. A payload item we do
not handle is answered 2xx (a CRM bans endpoints that keep failing) and parked with a
reason.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.pipeline_api.crm.adapter import (
    BadDelivery,
    Delivery,
    Unauthenticated,
    WebhookEndpoint,
    WebhookRequest,
)
from services.pipeline_api.crm.registry import WEBHOOKS
from services.pipeline_api.deps import WebhookDeps, WebhookIntake
from services.pipeline_api.events.intake import read_limited
from services.pipeline_api.webhooks.deliveries import storable
from services.pipeline_api.webhooks.ingest import IngestOutcome, ingest
from services.pipeline_api.webhooks.repository import headers_for_audit
from services.pipeline_api.webhooks.schemas import WebhookResult
from shared.db_errors import refused_by_data
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses, storage_unavailable
from shared.settings import Settings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=GuardedRoute)
_log = logging.getLogger("salesops.webhooks")

UNAUTHENTICATED = "The request could not be authenticated."
PROBLEMS = problem_responses(400, 401, 413, 503)
"""What every webhook endpoint may answer besides its 2xx (documented in the spec)."""


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _signed_uri(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.public_base_url.rstrip("/") + request.url.path + query
    return str(request.url)


def _unauthenticated(reason: str) -> Problem:
    _log.warning("webhook rejected: %s", reason)
    return Problem(401, UNAUTHENTICATED)


async def _ingest(
    request: Request, deps: WebhookIntake, kind: str, body: bytes, delivery: Delivery
) -> IngestOutcome:
    archived = body if delivery.archived is None else delivery.archived
    try:
        return await ingest(
            sessions=deps.sessions,
            writer=deps.event_log,
            source=delivery.source,
            kind=kind,
            headers=headers_for_audit(request.headers.items()),
            body=archived,
            changes=storable(archived, delivery.changes),
            max_future=deps.settings.event_max_future,
            alias_cache=deps.aliases,
        )
    except Problem:
        raise
    except Exception as exc:  # nothing acknowledged: the CRM retries
        if refused_by_data(exc):  # e.g. a NUL in a change being parked
            raise Problem(400, "This request holds a value that cannot be stored.") from exc
        _log.exception("webhook ingest failed")
        raise storage_unavailable("retry later") from exc


async def _receive(
    endpoint: WebhookEndpoint, request: Request, deps: WebhookIntake
) -> list[IngestOutcome]:
    """Admit on what precedes the body, read it within the limit, then authenticate and
    parse it (the CRM's package) and ingest each source's changes in turn."""
    settings = deps.settings
    asked = WebhookRequest(
        method=request.method,
        uri=_signed_uri(request, settings),
        headers=_headers(request),
        query=request.query_params,
        sources=deps.sources,
    )
    try:
        read = await endpoint.admit(asked)
        body = await read_limited(request, settings.intake_max_bytes)
        deliveries = await read(body)
    except Unauthenticated as exc:
        raise _unauthenticated(str(exc)) from exc
    except BadDelivery as exc:
        raise Problem(400, str(exc)) from exc
    return [await _ingest(request, deps, endpoint.delivery_kind, body, d) for d in deliveries]


def _route(endpoint: WebhookEndpoint) -> None:
    """Serve `endpoint`: our `WebhookResult`, or the fixed answer its CRM requires."""
    ack = endpoint.ack
    options: dict[str, Any] = {
        "methods": ["POST"],
        "name": endpoint.name,
        "summary": endpoint.summary,
        "description": endpoint.description,
        "responses": PROBLEMS,
    }
    if ack is None:

        async def answer_result(request: Request, deps: WebhookDeps) -> WebhookResult:
            return WebhookResult.of(await _receive(endpoint, request, deps))

        router.add_api_route(endpoint.path, answer_result, response_model=WebhookResult, **options)
        return

    async def answer_ack(request: Request, deps: WebhookDeps) -> Response:
        await _receive(endpoint, request, deps)
        return Response(ack.body, media_type=ack.media_type)

    router.add_api_route(endpoint.path, answer_ack, response_class=Response, **options)


for _endpoint in WEBHOOKS:
    _route(_endpoint)
