"""The one protocol a CRM package implements, and the shapes its webhook handlers use.

A `CrmAdapter` says everything the rest of pipeline_api needs from a CRM: its kind (the
`kind` of a source), the hosts its REST API and token endpoints live on (outbound.py lets
credentials go nowhere else), its webhook endpoints, its re-sync client, and what a source
must have to be re-synced. `registry.py` holds one adapter per kind; nothing outside a
CRM's package and the registry names a CRM.

A webhook endpoint authenticates in two steps, so a request that cannot be authentic
costs no body read: `admit` sees only the method, URL, headers and the sources of its
kind, and answers a reader of the body (or raises `Unauthenticated`); the reader
authenticates what needs the body, parses it, and answers one `Delivery` per source to
ingest (or raises `Unauthenticated` or `BadDelivery`). The route (webhooks/routes.py)
keeps the HTTP: reading the body within limits, the problem answers, and `ingest`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from services.pipeline_api.crm.changes import CrmChange
from services.pipeline_api.crm.http import RetryPolicy, Sleep
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.crm.resync import ResyncClient

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn


class Unauthenticated(Exception):
    """The request is not authentic: answered with a bare 401. The message is for our
    logs only, never for the client."""


class BadDelivery(Exception):
    """An authentic request whose body cannot be read: answered 400 with this message."""


def json_body(body: bytes) -> Any:
    """The body as exact JSON (`exact_json`), or `BadDelivery` saying it is not JSON."""
    try:
        return exact_json(body)
    except ValueError as exc:
        raise BadDelivery(f"The body is not valid JSON: {exc}") from exc


class SourceLookup(Protocol):
    """The configured sources of a kind (sources/cache.py)."""

    async def enabled(self, kind: str) -> list[SourceIn]: ...

    async def disabled(self, kind: str) -> list[SourceIn]: ...


@dataclass(frozen=True)
class WebhookRequest:
    """What a handler may look at before the body is read."""

    method: str
    uri: str
    """The URL as the CRM signed it (`public_base_url` when we sit behind a proxy)."""
    headers: Mapping[str, str]
    """Names lower-cased."""
    query: Mapping[str, str]
    sources: SourceLookup


@dataclass(frozen=True)
class Delivery:
    """Changes to ingest for one source, archived under the endpoint's delivery kind."""

    source: SourceIn
    changes: list[CrmChange]
    archived: bytes | None = None
    """The body to archive when it is not the one received (a secret redacted)."""


BodyReader = Callable[[bytes], Awaitable[list[Delivery]]]
"""Authenticates what needs the body, then parses it."""


@dataclass(frozen=True)
class Ack:
    """A fixed answer a CRM requires instead of our JSON result (Salesforce's SOAP Ack)."""

    body: bytes
    media_type: str


@dataclass(frozen=True)
class WebhookEndpoint:
    """One webhook endpoint of a CRM, as served under /v1/webhooks and documented."""

    path: str
    """Under /v1/webhooks, e.g. "/salesforce/cdc"."""
    name: str
    """The route's name, from which its OpenAPI operationId is made."""
    summary: str
    description: str | None
    delivery_kind: str
    """The `kind` its requests are archived under, e.g. "salesforce-cdc"."""
    admit: Callable[[WebhookRequest], Awaitable[BodyReader]]
    """Checks what it can before the body is read; raises `Unauthenticated`."""
    replay: Callable[[SourceIn, bytes], list[CrmChange]]
    """The changes an archived delivery holds for a source, as `admit`'s reader would
    read them today; raises `ValueError` for a body that cannot be read at all."""
    ack: Ack | None = None


class CrmAdapter(Protocol):
    """What pipeline_api needs from one CRM; each CRM package exports one (`ADAPTER`)."""

    @property
    def kind(self) -> str:
        """A source's `kind`, e.g. "hubspot"."""
        ...

    @property
    def api_hosts(self) -> tuple[str, ...]:
        """Host patterns of its REST API and token endpoints (`*` matches across dots)."""
        ...

    @property
    def webhooks(self) -> tuple[WebhookEndpoint, ...]: ...

    def check_source(self, source: SourceIn) -> None:
        """Refuses a source whose CRM-specific settings this CRM cannot use, with a
        `ValueError` whose message the API answers (422) and `salesops sources` prints.
        The settings themselves are `SourceIn`'s fields: the API shape is the contract."""
        ...

    def resync_missing(self, source: SourceIn) -> list[str]:
        """What the source lacks to be re-synced from the CRM's API (nothing: it can be)."""
        ...

    def resync_client(
        self,
        source: SourceIn,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None,
        sleep: Sleep,
        on_rotated: Callable[[str], Awaitable[None]] | None,
    ) -> ResyncClient:
        """The client that reads the source's account back; `resync_missing` is empty."""
        ...


def api_token(source: SourceIn) -> str:
    """The source's fixed API token, empty when it has none."""
    return source.api_token.get_secret_value() if source.api_token is not None else ""


def resync_needs(source: SourceIn, *, credential: str, has_credential: bool) -> list[str]:
    """`api_base_url` and the named credential, those of them the source lacks."""
    base = bool((source.api_base_url or "").strip())
    return [name for name, ok in (("api_base_url", base), (credential, has_credential)) if not ok]


class TokenAdapter(ABC):
    """The re-sync half of a CRM whose REST API takes a fixed token that does not expire
    (HubSpot private apps, Pipedrive API tokens): a subclass writes only `token_client`,
    and still declares `kind`, `api_hosts` and `webhooks`."""

    def check_source(self, source: SourceIn) -> None:
        """`oauth` is Salesforce's refresh token flow; a CRM re-synced with a fixed token
        has no use for it, and a source that sets it was meant for another CRM."""
        if source.oauth is not None:
            raise ValueError("oauth is for Salesforce sources; other CRMs use api_token")

    def resync_missing(self, source: SourceIn) -> list[str]:
        return resync_needs(source, credential="api_token", has_credential=bool(api_token(source)))

    def resync_client(
        self,
        source: SourceIn,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None,
        sleep: Sleep,
        on_rotated: Callable[[str], Awaitable[None]] | None,
    ) -> ResyncClient:
        """`on_rotated` is never called: a fixed token does not rotate."""
        return self.token_client(
            source,
            http,
            base_url=(source.api_base_url or "").strip(),
            token=api_token(source),
            policy=policy,
            sleep=sleep,
        )

    @abstractmethod
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
        """The CRM's REST client at `base_url` with the source's token."""
