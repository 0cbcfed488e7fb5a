"""HubSpot behind the `CrmAdapter` protocol: one webhook endpoint for every portal of
the app, signed with the app's secret (v1, v2 or v3, per source), and its REST API.

A batch may mix portals, each a source of its own; the app's secret is shared by its
portals, so a batch naming none of ours answers as a bad signature does.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING

import httpx

from services.pipeline_api.crm.adapter import (
    BadDelivery,
    BodyReader,
    Delivery,
    SourceLookup,
    TokenAdapter,
    Unauthenticated,
    WebhookEndpoint,
    WebhookRequest,
    json_body,
)
from services.pipeline_api.crm.changes import CrmChange, Ignored
from services.pipeline_api.crm.http import RetryPolicy, Sleep
from services.pipeline_api.crm.hubspot import webhook
from services.pipeline_api.crm.hubspot.rest import HubSpotClient
from services.pipeline_api.crm.hubspot.signatures import HubSpotSignatures, check_hubspot_headers
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.crm.resync import ResyncClient
from services.pipeline_api.crm.signatures import SignatureError

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

KIND = "hubspot"


async def _admit(request: WebhookRequest) -> BodyReader:
    now_ms = int(time.time() * 1000)
    candidates: list[SourceIn] = []
    last_error = "no HubSpot source is configured"
    for source in await request.sources.enabled(KIND):
        try:
            check_hubspot_headers(
                version=source.hubspot_signature, headers=request.headers, now_ms=now_ms
            )
            candidates.append(source)
        except SignatureError as exc:
            last_error = str(exc)
    if not candidates:
        raise Unauthenticated(f"hubspot: {last_error}")

    async def read(body: bytes) -> list[Delivery]:
        signatures = HubSpotSignatures(
            method=request.method,
            uri=request.uri,
            body=body,
            headers=request.headers,
            now_ms=now_ms,
        )
        failure = last_error
        authentic: list[SourceIn] = []
        for source in candidates:
            try:
                signatures.verify(source.hubspot_signature, source.secrets.candidates())
                authentic.append(source)
            except SignatureError as exc:
                failure = str(exc)
        if not authentic:
            raise Unauthenticated(f"hubspot: {failure}")
        by_source = {s.account_id: s for s in authentic}
        items = json_body(body)
        try:
            portals = webhook.portal_ids(items)
        except webhook.HubSpotError as exc:
            raise BadDelivery(str(exc)) from exc
        # A disabled source whose own secret signed the batch keeps its portal's items
        # under its own archived request, to be replayed once it is enabled again.
        paused = await _paused_portals(request.sources, portals - by_source.keys(), signatures)
        try:
            by_portal = webhook.batch(items, by_source, paused=paused)
        except (ValueError, TypeError) as exc:  # HubSpotError, or a value it could not read
            raise BadDelivery(str(exc)) from exc
        if not by_portal:
            # The signature is the app's, shared by its portals: a batch of none of ours
            # answers as a bad signature does, so nobody learns which portals are configured.
            raise Unauthenticated("hubspot: none of the batch's portals is a source's")
        deliveries = [Delivery(by_source[p], changes) for p, changes in by_portal.items()]
        for portal, source in sorted(paused.items()):
            kept: list[CrmChange] = [
                Ignored(
                    f"HubSpot source {source.id!r} is disabled: replay this archived request "
                    "once it is enabled"
                )
                for item in webhook.events(items)
                if str(item["portalId"]) == portal
            ]
            deliveries.append(Delivery(source, kept))
        return deliveries

    return read


async def _paused_portals(
    sources: SourceLookup, portals: Collection[str], signatures: HubSpotSignatures
) -> dict[str, SourceIn]:
    """The disabled sources, by portal, of these portals whose own secret signed the
    delivery: only then may their items be replayed as theirs later."""
    if not portals:
        return {}
    out: dict[str, SourceIn] = {}
    for source in await sources.disabled(KIND):
        if source.account_id not in portals:
            continue
        try:
            signatures.verify(source.hubspot_signature, source.secrets.candidates())
        except SignatureError:
            continue
        out[source.account_id] = source
    return out


def _replay(source: SourceIn, body: bytes) -> list[CrmChange]:
    items = exact_json(body)
    webhook.portal_ids(items)
    return webhook.portal_changes(items, source.account_id)


class HubSpotAdapter(TokenAdapter):
    kind = KIND
    api_hosts = ("api.hubapi.com", "*.hubapi.com")
    webhooks = (
        WebhookEndpoint(
            path="/hubspot",
            name="hubspot_webhook",
            summary="HubSpot webhook batches",
            description=None,
            delivery_kind="hubspot",
            admit=_admit,
            replay=_replay,
        ),
    )

    def token_client(
        self,
        source: SourceIn,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        token: str,
        policy: RetryPolicy | None,
        sleep: Sleep,
    ) -> ResyncClient:
        """Asks for the source's `keep_properties` beside the standard deal properties."""
        return HubSpotClient(
            base_url,
            token,
            http,
            extra_properties=source.mapping.keep_properties,
            policy=policy,
            sleep=sleep,
        )


ADAPTER = HubSpotAdapter()
