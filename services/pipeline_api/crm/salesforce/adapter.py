"""Salesforce behind the `CrmAdapter` protocol: Change Data Capture relayed as signed
JSON, Outbound Messages (SOAP, authenticated by a URL token and answered with the Ack
Salesforce requires), and its REST API with a fixed token or the OAuth refresh token flow.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from services.pipeline_api.crm.adapter import (
    Ack,
    BadDelivery,
    BodyReader,
    Delivery,
    Unauthenticated,
    WebhookEndpoint,
    WebhookRequest,
    api_token,
    json_body,
    resync_needs,
)
from services.pipeline_api.crm.changes import CrmChange
from services.pipeline_api.crm.credentials import Credentials
from services.pipeline_api.crm.http import RetryPolicy, Sleep
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.crm.resync import ResyncClient
from services.pipeline_api.crm.salesforce import webhook
from services.pipeline_api.crm.salesforce.oauth import SalesforceRefreshToken
from services.pipeline_api.crm.salesforce.rest import SalesforceClient
from services.pipeline_api.crm.salesforce.signatures import (
    check_relay_headers,
    token_matches,
    verify_relay,
)
from services.pipeline_api.crm.signatures import SignatureError

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

KIND = "salesforce"


def _cdc_changes(event: object, source: SourceIn) -> list[CrmChange]:
    """A CDC body's changes, read with the source's own client ids and field lists."""
    return webhook.parse_cdc(
        event,
        own_client_ids=frozenset(source.own_client_ids),
        field_lists=source.cdc_field_lists,
    )


async def _admit_cdc(request: WebhookRequest) -> BodyReader:
    headers = request.headers
    now_s = int(time.time())
    try:
        check_relay_headers(headers=headers, now_s=now_s)
    except SignatureError as exc:
        raise Unauthenticated(f"salesforce cdc: {exc}") from exc

    async def read(body: bytes) -> list[Delivery]:
        source_id = headers.get("x-salesops-source") or request.query.get("source")
        source = next((s for s in await request.sources.enabled(KIND) if s.id == source_id), None)
        known = source.secrets.candidates() if source is not None else []
        try:
            # An unknown source, or one without a secret, costs the same HMACs as a wrong
            # secret, so neither the answer nor its timing tells which sources exist.
            verify_relay(secrets=known, body=body, headers=headers, now_s=now_s)
        except SignatureError as exc:
            reason = exc if known else f"no source {source_id!r:.70} with a secret"
            raise Unauthenticated(f"salesforce cdc: {reason}") from exc
        assert source is not None  # decoy secrets never verify
        try:
            changes = _cdc_changes(json_body(body), source)
        except ValueError as exc:  # CdcError, or a value the parser could not read
            raise BadDelivery(str(exc)) from exc
        return [Delivery(source, changes)]

    return read


async def _admit_outbound(request: WebhookRequest) -> BodyReader:
    # Outbound Messages carry no signature, and an OrganizationId is no secret: the token
    # in the URL is the credential, checked against every source before the body is read.
    token = request.query.get("token", "")
    holders = [
        s
        for s in await request.sources.enabled(KIND)
        if token_matches(s.secrets.candidates(), token)
    ]
    if not holders:
        raise Unauthenticated("salesforce outbound: the token is no source's secret")

    async def read(body: bytes) -> list[Delivery]:
        try:
            batch = webhook.parse_outbound(body)
        except ValueError as exc:  # OutboundError, or a value the parser could not read
            raise BadDelivery(str(exc)) from exc
        org = batch.organization_id[:15]
        source = next((s for s in holders if s.account_id[:15] == org), None)
        if source is None:
            raise Unauthenticated(f"salesforce outbound: the token is not organization {org}'s")
        return [Delivery(source, list(batch.changes), archived=webhook.redact_session_id(body))]

    return read


def _replay_cdc(source: SourceIn, body: bytes) -> list[CrmChange]:
    return _cdc_changes(exact_json(body), source)


def _replay_outbound(source: SourceIn, body: bytes) -> list[CrmChange]:
    return list(webhook.parse_outbound(body).changes)


class SalesforceAdapter:
    kind = KIND
    api_hosts = ("*.salesforce.com", "*.force.com")
    webhooks = (
        WebhookEndpoint(
            path="/salesforce/cdc",
            name="salesforce_cdc",
            summary="Salesforce Change Data Capture, relayed as JSON",
            description=(
                "For relay authors: name the source in `X-Salesops-Source` (or `?source=`), "
                "and sign with the source's secret: `X-Salesops-Timestamp: <epoch seconds>` "
                "and `X-Salesops-Signature: sha256=<hex HMAC-SHA256 of '<timestamp>.' + raw "
                "body>`. The body is one event or a batch, in the CometD or EventBridge shape."
            ),
            delivery_kind="salesforce-cdc",
            admit=_admit_cdc,
            replay=_replay_cdc,
        ),
        WebhookEndpoint(
            path="/salesforce/outbound",
            name="salesforce_outbound",
            summary="Salesforce Outbound Messages (SOAP)",
            description=(
                "Answers the SOAP Ack Salesforce requires. The endpoint URL must carry "
                "`?token=<the source's secret>`, and the OrganizationId must be that source's."
            ),
            delivery_kind="salesforce-outbound",
            admit=_admit_outbound,
            replay=_replay_outbound,
            ack=Ack(webhook.outbound_ack(), "text/xml; charset=utf-8"),
        ),
    )

    def check_source(self, source: SourceIn) -> None:
        """Every setting a source has is one Salesforce can use."""

    def resync_missing(self, source: SourceIn) -> list[str]:
        """A fixed `api_token` expires with the org's session; `oauth` does not."""
        oauth = source.oauth is not None and source.oauth.refresh_token is not None
        return resync_needs(
            source,
            credential="api_token or oauth",
            has_credential=bool(api_token(source)) or oauth,
        )

    def resync_client(
        self,
        source: SourceIn,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None,
        sleep: Sleep,
        on_rotated: Callable[[str], Awaitable[None]] | None,
    ) -> ResyncClient:
        """With `oauth`, authenticates by the refresh token flow, and `on_rotated` is
        handed each new refresh token to store. `keep_properties` ending in `__c` are
        asked for as custom fields."""
        token: str | Credentials = api_token(source)
        if source.oauth is not None and source.oauth.refresh_token is not None:
            token = SalesforceRefreshToken(source.oauth, http, on_rotated=on_rotated, sleep=sleep)
        return SalesforceClient(
            (source.api_base_url or "").strip(),
            token,
            http,
            extra_fields=source.mapping.keep_properties,
            policy=policy,
            sleep=sleep,
        )


ADAPTER = SalesforceAdapter()
