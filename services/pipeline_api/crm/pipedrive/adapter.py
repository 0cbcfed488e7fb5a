"""Pipedrive behind the `CrmAdapter` protocol: one webhook endpoint (v2 and v1 bodies)
authenticated by HTTP Basic credentials checked before the body is read, and its REST
API (an API token that does not expire)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from services.pipeline_api.crm.adapter import (
    BadDelivery,
    BodyReader,
    Delivery,
    TokenAdapter,
    Unauthenticated,
    WebhookEndpoint,
    WebhookRequest,
    json_body,
)
from services.pipeline_api.crm.changes import CrmChange
from services.pipeline_api.crm.http import RetryPolicy, Sleep
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.crm.pipedrive import webhook
from services.pipeline_api.crm.pipedrive.auth import verify_basic
from services.pipeline_api.crm.pipedrive.rest import PipedriveClient
from services.pipeline_api.crm.resync import ResyncClient
from services.pipeline_api.crm.signatures import SignatureError

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

KIND = "pipedrive"


async def _admit(request: WebhookRequest) -> BodyReader:
    authentic: list[SourceIn] = []
    for candidate in await request.sources.enabled(KIND):
        try:
            verify_basic(
                user=candidate.secrets.basic_user,
                secrets=candidate.secrets.candidates(),
                headers=request.headers,
            )
            authentic.append(candidate)
        except SignatureError:
            continue
    if not authentic:
        raise Unauthenticated("pipedrive: no source accepts these Basic credentials")

    async def read(body: bytes) -> list[Delivery]:
        parsed = json_body(body)
        meta = parsed.get("meta") if isinstance(parsed, dict) else None
        company = meta.get("company_id") if isinstance(meta, dict) else None
        source: SourceIn | None
        if company is None and len(authentic) == 1:
            source = authentic[0]  # old v1 payloads may lack company_id; the credentials say
        else:
            source = next((s for s in authentic if s.account_id == str(company)), None)
        if source is None:
            raise Unauthenticated(f"pipedrive: the credentials are not company {company!r:.40}'s")
        try:
            changes = webhook.parse(parsed)
        except ValueError as exc:  # PipedriveError, or a value the parser could not read
            raise BadDelivery(str(exc)) from exc
        return [Delivery(source, changes)]

    return read


def _replay(source: SourceIn, body: bytes) -> list[CrmChange]:
    return webhook.parse(exact_json(body))


class PipedriveAdapter(TokenAdapter):
    kind = KIND
    api_hosts = ("*.pipedrive.com",)
    webhooks = (
        WebhookEndpoint(
            path="/pipedrive",
            name="pipedrive_webhook",
            summary="Pipedrive webhooks (v2 and v1)",
            description=None,
            delivery_kind="pipedrive",
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
        """Pipedrive sends every field, so `keep_properties` need not be asked for."""
        return PipedriveClient(base_url, token, http, policy=policy, sleep=sleep)


ADAPTER = PipedriveAdapter()
