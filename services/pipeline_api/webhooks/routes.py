"""CRM webhook endpoints: authenticate, keep the raw body, parse, then ingest.

No API key: each endpoint authenticates by its CRM's own scheme, before it parses a body
whenever the scheme allows, and a failure answers a bare 401. A payload item we do not
handle is answered 2xx (a CRM bans endpoints that keep failing) and parked with a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.pipeline_api.crm.changes import CrmChange, Ignored
from services.pipeline_api.crm.hubspot import webhook as hubspot
from services.pipeline_api.crm.pipedrive import webhook as pipedrive
from services.pipeline_api.crm.salesforce import webhook as salesforce
from services.pipeline_api.crm.signatures import (
    HubSpotSignatures,
    SignatureError,
    check_hubspot_headers,
    check_relay_headers,
    token_matches,
    verify_basic,
    verify_relay,
)
from services.pipeline_api.deps import PipelineState, State
from services.pipeline_api.events.intake import read_limited
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks.deliveries import (
    cdc_changes,
    exact_json,
    hubspot_batch,
    storable,
)
from services.pipeline_api.webhooks.ingest import IngestOutcome, ingest
from services.pipeline_api.webhooks.repository import headers_for_audit
from shared.db_errors import refused_by_data
from shared.edge import GuardedRoute
from shared.problems import Problem, problem_responses, storage_unavailable
from shared.settings import Settings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=GuardedRoute)
_log = logging.getLogger("salesops.webhooks")

UNAUTHENTICATED = "The request could not be authenticated."
PROBLEMS = problem_responses(400, 401, 413, 503)
"""What every webhook endpoint may answer besides its 2xx (documented in the spec)."""


class WebhookResult(BaseModel):
    accepted: int
    duplicates: int
    parked: int
    unsupported: int
    ignored: int = Field(
        0, description="Items acknowledged that change nothing we keep (noted on the archive)"
    )
    resync_jobs: list[int]

    @classmethod
    def of(cls, outcomes: list[IngestOutcome]) -> WebhookResult:
        return cls(
            accepted=sum(o.accepted for o in outcomes),
            duplicates=sum(o.duplicates for o in outcomes),
            parked=sum(o.parked for o in outcomes),
            unsupported=sum(o.unsupported for o in outcomes),
            ignored=sum(o.ignored for o in outcomes),
            resync_jobs=[j for o in outcomes for j in o.resync_jobs],
        )


def _exact_json(body: bytes) -> Any:
    try:
        return exact_json(body)
    except ValueError as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}") from exc


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
    request: Request,
    state: PipelineState,
    source: SourceIn,
    kind: str,
    body: bytes,
    changes: list[Any],
) -> IngestOutcome:
    try:
        return await ingest(
            sessions=state.sessions,
            writer=state.writer,
            source=source,
            kind=kind,
            headers=headers_for_audit(request.headers.items()),
            body=body,
            changes=storable(body, changes),
            max_future=state.settings.event_max_future,
            alias_cache=state.aliases,
        )
    except Problem:
        raise
    except Exception as exc:  # nothing acknowledged: the CRM retries
        if refused_by_data(exc):  # e.g. a NUL in a change being parked
            raise Problem(400, "This request holds a value that cannot be stored.") from exc
        _log.exception("webhook ingest failed")
        raise storage_unavailable("retry later") from exc


@router.post(
    "/hubspot",
    response_model=WebhookResult,
    summary="HubSpot webhook batches",
    responses=PROBLEMS,
)
async def hubspot_webhook(request: Request, state: State) -> WebhookResult:
    settings = state.settings
    headers = _headers(request)
    now_ms = int(time.time() * 1000)
    candidates: list[SourceIn] = []
    last_error = "no HubSpot source is configured"
    for source in await state.sources.enabled("hubspot"):
        try:
            check_hubspot_headers(version=source.hubspot_signature, headers=headers, now_ms=now_ms)
            candidates.append(source)
        except SignatureError as exc:
            last_error = str(exc)
    if not candidates:
        raise _unauthenticated(f"hubspot: {last_error}")
    body = await read_limited(request, settings.intake_max_bytes)
    signatures = HubSpotSignatures(
        method=request.method,
        uri=_signed_uri(request, settings),
        body=body,
        headers=headers,
        now_ms=now_ms,
    )
    authentic: list[SourceIn] = []
    for source in candidates:
        try:
            signatures.verify(source.hubspot_signature, source.secrets.candidates())
            authentic.append(source)
        except SignatureError as exc:
            last_error = str(exc)
    if not authentic:
        raise _unauthenticated(f"hubspot: {last_error}")
    by_source = {s.account_id: s for s in authentic}
    items = _exact_json(body)
    try:
        portals = hubspot.portal_ids(items)
    except hubspot.HubSpotError as exc:
        raise Problem(400, str(exc)) from exc
    # A disabled source whose own secret signed the batch keeps its portal's items under
    # its own archived request, to be replayed once it is enabled again.
    paused = await _paused_portals(state, portals - by_source.keys(), signatures)
    try:
        by_portal = hubspot_batch(items, by_source, paused=paused)
    except (ValueError, TypeError) as exc:  # HubSpotError, or a value it could not read
        raise Problem(400, str(exc)) from exc
    if not by_portal:
        # The signature is the app's, shared by its portals: a batch of none of ours
        # answers as a bad signature does, so nobody learns which portals are configured.
        raise _unauthenticated("hubspot: none of the batch's portals is a source's")
    outcomes = [
        await _ingest(request, state, by_source[portal], "hubspot", body, changes)
        for portal, changes in by_portal.items()
    ]
    for portal, source in sorted(paused.items()):
        kept: list[CrmChange] = [
            Ignored(
                f"HubSpot source {source.id!r} is disabled: replay this archived request "
                "once it is enabled"
            )
            for item in hubspot.events(items)
            if str(item["portalId"]) == portal
        ]
        outcomes.append(await _ingest(request, state, source, "hubspot", body, kept))
    return WebhookResult.of(outcomes)


async def _paused_portals(
    state: PipelineState, portals: Collection[str], signatures: HubSpotSignatures
) -> dict[str, SourceIn]:
    """The disabled sources, by portal, of these portals whose own secret signed the
    delivery: only then may their items be replayed as theirs later."""
    if not portals:
        return {}
    out: dict[str, SourceIn] = {}
    for source in await state.sources.disabled("hubspot"):
        if source.account_id not in portals:
            continue
        try:
            signatures.verify(source.hubspot_signature, source.secrets.candidates())
        except SignatureError:
            continue
        out[source.account_id] = source
    return out


@router.post(
    "/pipedrive",
    response_model=WebhookResult,
    summary="Pipedrive webhooks (v2 and v1)",
    responses=PROBLEMS,
)
async def pipedrive_webhook(request: Request, state: State) -> WebhookResult:
    settings = state.settings
    headers = _headers(request)
    authentic: list[SourceIn] = []
    for candidate in await state.sources.enabled("pipedrive"):
        try:
            verify_basic(
                user=candidate.secrets.basic_user,
                secrets=candidate.secrets.candidates(),
                headers=headers,
            )
            authentic.append(candidate)
        except SignatureError:
            continue
    if not authentic:
        raise _unauthenticated("pipedrive: no source accepts these Basic credentials")
    body = await read_limited(request, settings.intake_max_bytes)
    parsed = _exact_json(body)
    meta = parsed.get("meta") if isinstance(parsed, dict) else None
    company = meta.get("company_id") if isinstance(meta, dict) else None
    source: SourceIn | None
    if company is None and len(authentic) == 1:
        source = authentic[0]  # old v1 payloads may lack company_id; the credentials say
    else:
        source = next((s for s in authentic if s.account_id == str(company)), None)
    if source is None:
        raise _unauthenticated(f"pipedrive: the credentials are not company {company!r:.40}'s")
    try:
        changes = pipedrive.parse(parsed)
    except ValueError as exc:  # PipedriveError, or a value the parser could not read
        raise Problem(400, str(exc)) from exc
    return WebhookResult.of([await _ingest(request, state, source, "pipedrive", body, changes)])


@router.post(
    "/salesforce/cdc",
    response_model=WebhookResult,
    summary="Salesforce Change Data Capture, relayed as JSON",
    description=(
        "For relay authors: name the source in `X-Salesops-Source` (or `?source=`), and sign "
        "with the source's secret: `X-Salesops-Timestamp: <epoch seconds>` and "
        "`X-Salesops-Signature: sha256=<hex HMAC-SHA256 of '<timestamp>.' + raw body>`. "
        "The body is one event or a batch, in the CometD or EventBridge shape."
    ),
    responses=PROBLEMS,
)
async def salesforce_cdc(request: Request, state: State) -> WebhookResult:
    settings = state.settings
    headers = _headers(request)
    now_s = int(time.time())
    try:
        check_relay_headers(headers=headers, now_s=now_s)
    except SignatureError as exc:
        raise _unauthenticated(f"salesforce cdc: {exc}") from exc
    body = await read_limited(request, settings.intake_max_bytes)
    source_id = headers.get("x-salesops-source") or request.query_params.get("source")
    source = next((s for s in await state.sources.enabled("salesforce") if s.id == source_id), None)
    known = source.secrets.candidates() if source is not None else []
    try:
        # An unknown source, or one without a secret, costs the same HMACs as a wrong
        # secret, so neither the answer nor its timing tells which sources exist.
        verify_relay(secrets=known, body=body, headers=headers, now_s=now_s)
    except SignatureError as exc:
        reason = exc if known else f"no source {source_id!r:.70} with a secret"
        raise _unauthenticated(f"salesforce cdc: {reason}") from exc
    assert source is not None  # decoy secrets never verify
    try:
        changes = cdc_changes(_exact_json(body), source)
    except ValueError as exc:  # CdcError, or a value the parser could not read
        raise Problem(400, str(exc)) from exc
    return WebhookResult.of(
        [await _ingest(request, state, source, "salesforce-cdc", body, changes)]
    )


@router.post(
    "/salesforce/outbound",
    summary="Salesforce Outbound Messages (SOAP)",
    description=(
        "Answers the SOAP Ack Salesforce requires. The endpoint URL must carry "
        "`?token=<the source's secret>`, and the OrganizationId must be that source's."
    ),
    response_class=Response,
    responses=PROBLEMS,
)
async def salesforce_outbound(request: Request, state: State) -> Response:
    settings = state.settings
    # Outbound Messages carry no signature, and an OrganizationId is no secret: the token
    # in the URL is the credential, checked against every source before the body is read.
    token = request.query_params.get("token", "")
    holders = [
        s
        for s in await state.sources.enabled("salesforce")
        if token_matches(s.secrets.candidates(), token)
    ]
    if not holders:
        raise _unauthenticated("salesforce outbound: the token is no source's secret")
    body = await read_limited(request, settings.intake_max_bytes)
    try:
        batch = salesforce.parse_outbound(body)
    except ValueError as exc:  # OutboundError, or a value the parser could not read
        raise Problem(400, str(exc)) from exc
    org = batch.organization_id[:15]
    source = next((s for s in holders if s.account_id[:15] == org), None)
    if source is None:
        raise _unauthenticated(f"salesforce outbound: the token is not organization {org}'s")
    archived = salesforce.redact_session_id(body)
    await _ingest(request, state, source, "salesforce-outbound", archived, batch.changes)
    return Response(salesforce.outbound_ack(), media_type="text/xml; charset=utf-8")
