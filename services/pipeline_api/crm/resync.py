"""Re-sync: reading deals and activities back from a CRM's REST API, for what a webhook
cannot carry.

A gap, an overflow, a merge or a restore (`ResyncRequest`) is answered by reading the deal
back from the CRM. Each CRM's client (`crm/<kind>/rest.py`, made by its adapter's
`resync_client`) reads one CRM account and turns its deal JSON into the same `DealChange`
a webhook parser produces (canonical field names, CRM ids left raw for `mapping.py`),
always with op "updated" and the CRM's last-modified time as `occurred_at`. Activities the
webhook could only name (a HubSpot engagement, a Salesforce Task or Event that changed)
are read back the same way, as `ActivityChange`s stamped with the CRM's last-modified time
as `changed_at`.

`api_base_url` is the host root: https://api.hubapi.com, the Salesforce instance URL
(https://MyDomain.my.salesforce.com), https://COMPANY.pipedrive.com. Requests go through
`CrmHttp` (http.py): retries, rate-limit pacing, and errors that never hold a token.

`event_key` is `resync:{crm_id}:{occurred_at}`: fetching a deal that has not changed gives
the same key, so a repeated re-sync dedupes instead of storing the same state twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import httpx

from services.pipeline_api.crm.changes import ActivityChange, ActivityKind, DealChange
from services.pipeline_api.crm.credentials import Credentials, StaticToken
from services.pipeline_api.crm.http import (
    CrmHttp,
    CrmResponseError,
    RetryPolicy,
    Sleep,
    decode_json,
)
from services.pipeline_api.crm.values import Unreadable, jsonable

ChangeT = TypeVar("ChangeT", bound=DealChange | ActivityChange)


def read_deal(crm: str, crm_id: str, build: Callable[[], DealChange]) -> DealChange:
    """`build()`, its failure a `CrmResponseError` that names the deal but no value."""
    try:
        return build()
    except (ValueError, TypeError, KeyError) as exc:
        raise CrmResponseError(f"{crm} deal {crm_id} cannot be read: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """An error's own message when it is ours (value-free); else only its type, since
    Python's messages quote the value (`Invalid isoformat string: '...'`)."""
    return str(exc) if isinstance(exc, Unreadable) else type(exc).__name__


def resync_change(
    crm_id: str, occurred_at: datetime, fields: dict[str, Any], properties: dict[str, Any]
) -> DealChange:
    """A deal as read back: op "updated", keyed by its last-modified time so an
    unchanged deal read again dedupes."""
    return DealChange(
        crm_id=crm_id,
        event_key=f"resync:{crm_id}:{occurred_at.isoformat()}",
        occurred_at=occurred_at,
        op="updated",
        fields=fields,
        properties=jsonable(properties),
    )


def activity_key(crm_id: str, changed: datetime) -> str:
    """Like a deal's re-sync key: re-fetching an unchanged activity dedupes."""
    return f"resync:activity:{crm_id}:{changed.isoformat()}"


class ResyncClient(Protocol):
    """Reads one CRM account's deals back as `DealChange`s (op "updated")."""

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        """The deal as the CRM has it now, or None when the CRM answers 404 for it
        (deleted, archived, merged away, or never there). None is not recorded here: the
        caller records the deletion, so it can decide what a missing deal means."""
        ...

    def iter_deals(self) -> AsyncIterator[DealChange]:
        """Every (not deleted) deal of the account, page by page, each once."""
        ...


@runtime_checkable
class ActivityFetcher(Protocol):
    """A client that can read one activity back (HubSpot engagements, Salesforce Tasks
    and Events)."""

    async def fetch_activity(self, kind: ActivityKind, crm_id: str) -> ActivityChange | None:
        """The activity as the CRM has it now; None when the CRM no longer has it."""
        ...


@runtime_checkable
class ActivityLister(Protocol):
    """A client that can page through every activity of a kind (Salesforce)."""

    def iter_activities(self, kind: ActivityKind) -> AsyncIterator[ActivityChange]:
        """Every (not deleted) activity of `kind`, page by page."""
        ...


class RestClient:
    """The base of each CRM's REST client: base URL and token checked, the token never in
    a repr, every GET through `CrmHttp`. A subclass overrides the hooks its CRM needs
    (`_auth_headers`, `_refused_for_limit`, `_quota_pause`, `_after`)."""

    crm: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url or not base_url.strip():
            raise ValueError(f"{self.crm} re-sync needs the API base URL")
        if not token:
            raise ValueError(f"{self.crm} re-sync needs an API token")
        self.base_url = base_url.strip().rstrip("/")
        credentials = StaticToken(self._auth_headers(token)) if isinstance(token, str) else token
        self.http = CrmHttp(
            http,
            crm=self.crm,
            credentials=credentials,
            policy=policy,
            sleep=sleep,
            rng=rng,
            refused_for_limit=self._refused_for_limit,
            quota_pause=self._quota_pause,
        )

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.base_url!r})"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _refused_for_limit(self, response: httpx.Response) -> bool:
        return False

    def _quota_pause(self, response: httpx.Response) -> float | None:
        return None

    async def _get_json(
        self, url: str, params: Mapping[str, str] | None = None, *, not_found_ok: bool = False
    ) -> Any | None:
        """The JSON body; None for a 404 when `not_found_ok`."""
        response = await self.http.get(url, params, not_found_ok=not_found_ok)
        self._after(response)
        if response.status_code == 404:
            return None
        return decode_json(response, self.crm)

    def _after(self, response: httpx.Response) -> None:
        """A hook on every answered request (Salesforce reads its usage header here)."""


async def resync_all(
    records: AsyncIterator[ChangeT],
    on_change: Callable[[ChangeT], Awaitable[None]],
    progress: Callable[[int], None] | None = None,
    *,
    progress_every: int = 100,
) -> int:
    """Page through every record (`client.iter_deals()`, `iter_activities(kind)`), awaiting
    `on_change` for each in turn; return how many.

    `progress(count)` is called every `progress_every` records and once at the end with
    the total. An error (from the CRM or from `on_change`) propagates; the records handed
    over before it stay handed over, and a re-run dedupes them by `event_key`.
    """
    if progress_every < 1:
        raise ValueError("progress_every must be at least 1")
    count = reported = 0
    try:
        async for change in records:
            await on_change(change)
            count += 1
            if progress is not None and count % progress_every == 0:
                progress(count)
                reported = count
    finally:
        aclose = getattr(records, "aclose", None)
        if aclose is not None:
            await aclose()
    if progress is not None and (reported != count or count == 0):
        progress(count)
    return count


async def resync_each(
    fetch: Callable[[str], Awaitable[ChangeT | None]],
    crm_ids: Iterable[str],
    on_change: Callable[[ChangeT], Awaitable[None]],
) -> tuple[int, list[str]]:
    """Fetch the given records (`client.fetch_deal`, or `fetch_activity` for one kind),
    each id once, in order, awaiting `on_change` for each found; return (how many were
    fetched, the ids the CRM no longer has). Recording the missing ones as deleted is the
    caller's decision."""
    fetched = 0
    missing: list[str] = []
    for crm_id in dict.fromkeys(crm_ids):
        change = await fetch(crm_id)
        if change is None:
            missing.append(crm_id)
            continue
        await on_change(change)
        fetched += 1
    return fetched, missing
