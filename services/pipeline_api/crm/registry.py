"""Every CRM we connect, by kind: the one place the rest of pipeline_api learns them from.

Source kinds (`SourceKind`), the webhook routes under /v1/webhooks, the kinds of archived
deliveries and how each is replayed, the hosts a re-sync may call, and the re-sync client
of a source all come from `ADAPTERS`.

Adding a CRM: write `crm/<kind>/` (see `crm/__init__.py`) with an `ADAPTER` that meets
`adapter.CrmAdapter`, and add its line to `ADAPTERS` below. Nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from services.pipeline_api.crm import hubspot, pipedrive, salesforce
from services.pipeline_api.crm.adapter import CrmAdapter, WebhookEndpoint
from services.pipeline_api.crm.http import RetryPolicy, Sleep
from services.pipeline_api.crm.resync import ResyncClient

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

ADAPTERS: dict[str, CrmAdapter] = {
    adapter.kind: adapter
    for adapter in (
        hubspot.ADAPTER,
        salesforce.ADAPTER,
        pipedrive.ADAPTER,
    )
}
"""By kind, in the order the source kinds are listed in the API (append a new CRM)."""

KINDS: tuple[str, ...] = tuple(ADAPTERS)

WEBHOOKS: tuple[WebhookEndpoint, ...] = tuple(
    sorted((e for a in ADAPTERS.values() for e in a.webhooks), key=lambda e: e.path)
)
"""Every webhook endpoint, by path, so the API lists them in an order no registration
order changes."""

_BY_DELIVERY_KIND = {e.delivery_kind: e for e in WEBHOOKS}
DELIVERY_KINDS: tuple[str, ...] = tuple(sorted(_BY_DELIVERY_KIND))


def adapter_for(kind: str) -> CrmAdapter:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise ValueError(f"no CRM of kind {kind!r}") from None


def endpoint_for_delivery(kind: str) -> WebhookEndpoint:
    """The endpoint whose requests are archived under `kind`, to replay them."""
    try:
        return _BY_DELIVERY_KIND[kind]
    except KeyError:
        raise ValueError(f"no parser for deliveries of kind {kind!r}") from None


def api_hosts(kind: str | None) -> tuple[str, ...]:
    """The API host patterns of a CRM kind; of every CRM for None."""
    if kind is not None:
        return ADAPTERS[kind].api_hosts if kind in ADAPTERS else ()
    return tuple(p for adapter in ADAPTERS.values() for p in adapter.api_hosts)


def resync_missing(source: SourceIn) -> list[str]:
    """What a source lacks to be re-synced from its CRM's API (nothing: it can be)."""
    return adapter_for(source.kind).resync_missing(source)


def client_for(
    source: SourceIn,
    http: httpx.AsyncClient,
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    on_rotated: Callable[[str], Awaitable[None]] | None = None,
) -> ResyncClient:
    """The re-sync client for a source, by its kind. `on_rotated` is handed each new
    refresh token a CRM's OAuth issues (Salesforce), to store."""
    adapter = adapter_for(source.kind)
    if missing := adapter.resync_missing(source):
        raise ValueError(
            f"source {source.id!r} ({source.kind}) cannot be re-synced: "
            f"{' and '.join(missing)} not set"
        )
    return adapter.resync_client(source, http, policy=policy, sleep=sleep, on_rotated=on_rotated)
