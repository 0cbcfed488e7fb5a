"""Re-sync deals from a CRM's REST API, for what a webhook cannot carry.

A gap, an overflow, a merge or a restore (`ResyncRequest`) is answered by reading the deal
back from the CRM. Each client here reads one CRM account and turns its deal JSON into the
same `DealChange` a webhook parser produces (canonical field names, CRM ids left raw for
`mapping.py`), always with op "updated" and the CRM's last-modified time as `occurred_at`.
Activities the webhook could only name (a HubSpot engagement, a Salesforce Task or Event
that changed) are read back the same way, as `ActivityChange`s stamped with the CRM's
last-modified time as `changed_at`.

    HubSpot     GET /crm/v3/objects/deals/{id}?properties=...&associations=companies
                GET /crm/v3/objects/deals?limit=100&after=...  (next page: paging.next.after)
                Authorization: Bearer <private app / OAuth token>
                GET /crm/v3/objects/{calls|emails|meetings|tasks|notes}/{id}?associations=deals
    Salesforce  GET /services/data/v60.0/sobjects/Opportunity/{id}
                GET /services/data/v60.0/query?q=SELECT FIELDS(STANDARD) FROM Opportunity
                (next page: nextRecordsUrl until done); Authorization: Bearer <token>
                GET /services/data/v60.0/sobjects/{Task|Event}/{id}
                GET /services/data/v60.0/query?q=SELECT FIELDS(STANDARD) FROM {Task|Event}
    Pipedrive   GET /api/v2/deals/{id}
                GET /api/v2/deals?limit=500&cursor=...  (next page: additional_data.next_cursor)
                x-api-token: <API token>

`api_base_url` is the host root: https://api.hubapi.com, the Salesforce instance URL
(https://MyDomain.my.salesforce.com), https://COMPANY.pipedrive.com.

Every body is parsed with `exact_json`, as webhook bodies are, so an amount is never a float
on its way to the decimal string in `fields["amount"]`, and no number is expanded before
its size is checked. Requests go through `CrmHttp`, which
retries 429, 5xx and connection errors with exponential backoff plus jitter, honours
`Retry-After` (seconds or HTTP date), retries Salesforce's 403 REQUEST_LIMIT_EXCEEDED, and
pauses on its own when a quota header says nothing is left (HubSpot
X-HubSpot-RateLimit-Remaining, Pipedrive x-ratelimit-remaining). A refused token (401/403)
or any other 4xx fails at once with a message that gives the CRM's status and error code,
never the token nor the body's text (outbound.py says which hosts are called at all).

`event_key` is `resync:{crm_id}:{occurred_at}`: fetching a deal that has not changed gives
the same key, so a repeated re-sync dedupes instead of storing the same state twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote

import httpx

from services.pipeline_api.crm.auth import Credentials, SalesforceRefreshToken, StaticToken
from services.pipeline_api.crm.changes import ActivityChange, ActivityKind, DealChange
from services.pipeline_api.crm.hubspot.webhook import property_field
from services.pipeline_api.crm.outbound import error_code
from services.pipeline_api.crm.salesforce.webhook import activity_change, activity_entity
from services.pipeline_api.sources.schemas import SourceIn, resync_missing
from services.pipeline_api.webhooks.deliveries import exact_json
from shared.money import MoneyError, amount_text, number_text

_log = logging.getLogger("salesops.resync")

Sleep = Callable[[float], Awaitable[None]]
ChangeT = TypeVar("ChangeT", bound=DealChange | ActivityChange)

SALESFORCE_API_VERSION = "v60.0"

# HubSpot returns only the properties asked for (plus a few defaults).
HUBSPOT_PROPERTIES = (
    "dealname",
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "hubspot_owner_id",
    "closedate",
    "createdate",
    "dealtype",
    "hs_forecast_category",
    "hs_is_closed",
    "hs_is_closed_won",
    "hs_lastmodifieddate",
)
_HUBSPOT_BOOKKEEPING = {"hs_object_id", "hs_lastmodifieddate", "hs_is_closed", "hs_is_closed_won"}

SALESFORCE_FORECAST = {
    "Pipeline": "pipeline",
    "Best Case": "best_case",
    "BestCase": "best_case",
    "Commit": "commit",
    "Forecast": "commit",
    "Closed": "closed",
    "Omitted": "omitted",
}


# --- errors ---------------------------------------------------------------------------


class ResyncError(Exception):
    """A re-sync could not read from the CRM. The message says why; it never holds a token."""


class CrmAuthError(ResyncError):
    """401/403: the token is wrong, expired or lacks a scope. Never retried."""


class CrmRequestError(ResyncError):
    """Another 4xx: a request the CRM will not accept however often it is sent."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CrmUnavailableError(ResyncError):
    """Still rate-limited, failing (5xx) or unreachable after every attempt, or asking us
    to wait longer than `RetryPolicy.max_wait`: try the re-sync again later."""


class CrmResponseError(ResyncError):
    """The CRM answered, but not with the JSON its deal API documents."""


# --- the shared request helper --------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard `CrmHttp` tries. Attempt n (from 1) that fails is retried after
    `min(max_delay, base_delay * 2**(n-1))` plus up to `jitter` times that at random,
    unless the CRM said how long to wait (Retry-After, or a rate-limit window header)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    max_wait: float = 300.0
    """Longest wait a CRM may ask for; beyond it `CrmUnavailableError` is raised instead
    (a daily quota is not worth holding a worker for hours)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.jitter < 0 or self.max_wait < 0:
            raise ValueError("delays must not be negative")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header in seconds: delay-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _number_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def error_detail(response: httpx.Response) -> str:
    """What a failure says about itself, for job errors and logs: the CRM's error code,
    or that it named none. The body itself is never repeated."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than json reads
        body = None
    return error_code(body) or "no error code"


class CrmHttp:
    """GET requests to one CRM account: authentication, retries and rate-limit pacing.

    A 401 asks `credentials` to renew once per request (an expired Salesforce session);
    if they can, the request is sent again without counting as a failed attempt.

    `refused_for_limit(response)` says whether a non-429 refusal is really a rate limit
    (Salesforce's 403 REQUEST_LIMIT_EXCEEDED); `quota_pause(response)` says how long to
    wait before the next request when a quota header shows nothing left (None: no wait).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        crm: str,
        credentials: Credentials,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        refused_for_limit: Callable[[httpx.Response], bool] | None = None,
        quota_pause: Callable[[httpx.Response], float | None] | None = None,
    ) -> None:
        self._http = http
        self.crm = crm
        self._credentials = credentials
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._refused_for_limit = refused_for_limit or (lambda _response: False)
        self._quota_pause = quota_pause or (lambda _response: None)
        self._not_before = 0.0
        self.requests = 0

    async def get(
        self, url: str, params: Mapping[str, str] | None = None, *, not_found_ok: bool = False
    ) -> httpx.Response:
        """The response to `GET url`: a 2xx, or a 404 when `not_found_ok`.

        Raises `CrmAuthError` (401/403), `CrmRequestError` (other 4xx) at once, and
        `CrmUnavailableError` once every attempt was rate-limited, failed or unreachable.
        """
        policy = self.policy
        what = f"GET {httpx.URL(url).path}"
        renewed = False
        attempt = 0
        while attempt < policy.max_attempts:
            attempt += 1
            await self._pace()
            self.requests += 1
            auth = await self._credentials.headers()
            try:
                response = await self._http.get(
                    url, params=params, headers={"Accept": "application/json", **auth}
                )
            except httpx.TransportError as exc:  # connect/read errors, timeouts, dropped links
                if attempt == policy.max_attempts:
                    raise CrmUnavailableError(
                        f"{self.crm} could not be reached for {what} after {attempt} "
                        f"attempts: {type(exc).__name__}: {exc}"
                    ) from exc
                delay = self._backoff(attempt)
                _log.warning(
                    "%s %s failed (%s: %s); retry %d/%d in %.2fs",
                    self.crm,
                    what,
                    type(exc).__name__,
                    exc,
                    attempt,
                    policy.max_attempts - 1,
                    delay,
                )
                await self._sleep(delay)
                continue
            status = response.status_code
            if status == 429 or status >= 500 or self._refused_for_limit(response):
                if attempt == policy.max_attempts:
                    raise CrmUnavailableError(
                        f"{self.crm} answered {status} ({error_detail(response)}) to all "
                        f"{attempt} attempts at {what}"
                    )
                delay = self._retry_delay(response, attempt, what)
                _log.warning(
                    "%s %s answered %d (%s); retry %d/%d in %.2fs",
                    self.crm,
                    what,
                    status,
                    error_detail(response),
                    attempt,
                    policy.max_attempts - 1,
                    delay,
                )
                await self._sleep(delay)
                continue
            if status == 401 and not renewed and await self._credentials.renew(auth):
                renewed = True
                attempt -= 1  # an expired session is not a failed attempt
                continue
            self._note_quota(response)
            if status < 300 or (status == 404 and not_found_ok):
                return response
            raise self._refusal(response, what)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _refusal(self, response: httpx.Response, what: str) -> ResyncError:
        status = response.status_code
        detail = error_detail(response)
        if status in (401, 403):
            return CrmAuthError(
                f"{self.crm} refused the API token ({status} {detail}) for {what}: check the "
                "source's api_token (wrong, expired or revoked) and its scopes/permissions"
            )
        return CrmRequestError(f"{self.crm} rejected {what}: {status} {detail}", status)

    def _backoff(self, attempt: int) -> float:
        policy = self.policy
        delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        return delay + self._rng.uniform(0, delay * policy.jitter)

    def _retry_delay(self, response: httpx.Response, attempt: int, what: str) -> float:
        asked = retry_after_seconds(response.headers.get("Retry-After"))
        if asked is None:
            asked = self._quota_pause(response)
        if asked is None:
            return self._backoff(attempt)
        if asked > self.policy.max_wait:
            raise CrmUnavailableError(
                f"{self.crm} answered {response.status_code} to {what} and asks to wait "
                f"{asked:.0f}s, more than the {self.policy.max_wait:.0f}s allowed: "
                "re-sync later"
            )
        return asked

    def _note_quota(self, response: httpx.Response) -> None:
        pause = self._quota_pause(response)
        if pause is not None and pause > 0:
            self._not_before = time.monotonic() + min(pause, self.policy.max_wait)

    async def _pace(self) -> None:
        wait = self._not_before - time.monotonic()
        self._not_before = 0.0
        if wait > 0:
            _log.info("%s quota used up for this window; pausing %.2fs", self.crm, wait)
            await self._sleep(wait)


# --- conversions ----------------------------------------------------------------------


def decode_json(response: httpx.Response, crm: str) -> Any:
    """The body as JSON, read as a webhook body is (`exact_json`): exact numbers, none
    of them expanded, and a bounded depth."""
    try:
        return exact_json(response.content)
    except ValueError as exc:
        raise CrmResponseError(
            f"{crm} answered {response.status_code} to GET {response.request.url.path} with "
            f"a body of {len(response.content)} bytes that is not JSON"
        ) from exc


class Unreadable(ValueError):
    """A CRM value that cannot be read. The message names the field and the value's type
    and length, never the value: job errors are shown to operators and the value is the
    CRM's (or whoever answered)."""

    def __init__(self, field: str, value: Any, what: str) -> None:
        super().__init__(f"{field}: {shape(value)} is not {what}")


def shape(value: Any) -> str:
    """What a value is, without what it says: `a str of 12 chars`, `a list of 3 items`."""
    name = type(value).__name__
    if isinstance(value, str | bytes):
        return f"a {name} of {len(value)} chars"
    if isinstance(value, list | dict):
        return f"a {name} of {len(value)} items"
    return "null" if value is None else f"a {name}"


def instant(value: Any, field: str) -> datetime:
    """An aware UTC datetime from ISO 8601 / RFC 3339 (`Z`, `+00:00`, `+0000`; no offset
    means UTC) or from epoch milliseconds (HubSpot's other date form)."""
    if isinstance(value, bool):
        raise Unreadable(field, value, "a timestamp")
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))
        if not isinstance(value, str) or not value.strip():
            raise Unreadable(field, value, "a timestamp")
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, OverflowError) as exc:  # their messages quote the value
        raise Unreadable(field, value, "a timestamp") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def iso_date(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise Unreadable(field, value, "a date") from exc
    return instant(value, field).date().isoformat()


def _iso_time(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    return instant(value, field).isoformat().replace("+00:00", "Z")


def decimal_text(value: Any, field: str) -> str | None:
    """An amount as plain decimal text ("1234.50"), from a string, int or Decimal, through
    the one amount parser, whose size limits hold before the number is written out."""
    if value is None or value == "":
        return None
    try:
        return amount_text(value)
    except MoneyError as exc:  # its message may quote the value
        raise Unreadable(field, value, "an exact decimal amount within the size limits") from exc


def jsonable(value: Any) -> Any:
    """`Decimal`s (JSON numbers with a fraction) as exact decimal strings, so properties
    store as JSON (orjson and parked changes take no Decimal)."""
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _change(crm: str, crm_id: str, build: Callable[[], DealChange]) -> DealChange:
    try:
        return build()
    except (ValueError, TypeError, KeyError) as exc:
        raise CrmResponseError(f"{crm} deal {crm_id} cannot be read: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """An error's own message when it is ours (value-free); else only its type, since
    Python's messages quote the value (`Invalid isoformat string: '...'`)."""
    return str(exc) if isinstance(exc, Unreadable) else type(exc).__name__


def _resync_change(
    crm_id: str, occurred_at: datetime, fields: dict[str, Any], properties: dict[str, Any]
) -> DealChange:
    return DealChange(
        crm_id=crm_id,
        event_key=f"resync:{crm_id}:{occurred_at.isoformat()}",
        occurred_at=occurred_at,
        op="updated",
        fields=fields,
        properties=jsonable(properties),
    )


def _as_dict(value: Any, crm: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CrmResponseError(f"{crm} {what} is not a JSON object but {shape(value)}")
    return value


def _as_list(value: Any, crm: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CrmResponseError(f"{crm} {what} is not a JSON array but {shape(value)}")
    return value


def hubspot_change(record: dict[str, Any], *, companies_requested: bool = True) -> DealChange:
    """A HubSpot CRM v3 deal object (`id`, `properties` all strings, `updatedAt`,
    `associations.companies` when asked for) as a DealChange. The account is the primary
    company; with `companies_requested`, no primary company means no account (None)."""
    crm_id = _id(record.get("id"))
    if crm_id is None:
        raise CrmResponseError("HubSpot deal without an id")
    props = record.get("properties")
    if not isinstance(props, dict):
        raise CrmResponseError(f"HubSpot deal {crm_id} has no properties object")

    def build() -> DealChange:
        modified = props.get("hs_lastmodifieddate") or record.get("updatedAt")
        if not modified:
            raise ValueError("no hs_lastmodifieddate or updatedAt")
        fields: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for name, value in props.items():
            mapped = property_field(name, None if value is None else str(value))
            if mapped is not None:
                fields[mapped[0]] = mapped[1]
            elif name not in _HUBSPOT_BOOKKEEPING:
                properties[name] = value
        if "amount" in fields and fields["amount"] is not None:
            fields["amount"] = decimal_text(fields["amount"], "amount")
        won, closed = props.get("hs_is_closed_won"), props.get("hs_is_closed")
        if won == "true":
            fields["status"] = "won"
        elif closed == "true":
            fields["status"] = "lost"
        elif closed == "false":
            fields["status"] = "open"
        if companies_requested:
            # HubSpot leaves `associations` out when the deal has none of the kind asked for.
            associations = record.get("associations")
            companies = associations.get("companies") if isinstance(associations, dict) else None
            fields["account_id"] = _hubspot_primary_company(companies)
        return _resync_change(crm_id, instant(modified, "hs_lastmodifieddate"), fields, properties)

    return _change("HubSpot", crm_id, build)


def _hubspot_primary_company(companies: Any) -> str | None:
    """The primary company (association type `deal_to_company`), as the webhook parser
    takes only the primary association for the account."""
    results = companies.get("results") if isinstance(companies, dict) else None
    for item in results or []:
        if isinstance(item, dict) and item.get("type") == "deal_to_company":
            return _id(item.get("id"))
    return None


def salesforce_change(record: dict[str, Any]) -> DealChange:
    """A Salesforce Opportunity record (sobject GET or a query row) as a DealChange."""
    crm_id = _id(record.get("Id"))
    if crm_id is None:
        raise CrmResponseError("Salesforce Opportunity without an Id")

    def build() -> DealChange:
        modified = record.get("LastModifiedDate") or record.get("SystemModstamp")
        if not modified:
            raise ValueError("no LastModifiedDate or SystemModstamp")
        fields: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for name, value in record.items():
            if name in ("attributes", "Id", "LastModifiedDate", "SystemModstamp"):
                continue
            if name == "Name":
                fields["name"] = value
            elif name == "Amount":
                fields["amount"] = decimal_text(value, "Amount")
            elif name == "CurrencyIsoCode":
                fields["currency"] = value or None
            elif name == "StageName":
                fields["stage"] = value or None
            elif name == "OwnerId":
                fields["owner_id"] = _id(value)
            elif name == "AccountId":
                fields["account_id"] = _id(value)
            elif name == "CloseDate":
                fields["close_date"] = iso_date(value, "CloseDate")
            elif name == "CreatedDate":
                fields["created_at"] = _iso_time(value, "CreatedDate")
            elif name == "Type":
                fields["deal_type"] = value or None
            elif name == "ForecastCategoryName" and value in SALESFORCE_FORECAST:
                fields["forecast_category"] = SALESFORCE_FORECAST[value]
            elif name not in ("IsClosed", "IsWon"):
                properties[name] = value
        if record.get("IsWon") is True:
            fields["status"] = "won"
        elif record.get("IsClosed") is True:
            fields["status"] = "lost"
        elif record.get("IsClosed") is False:
            fields["status"] = "open"
        return _resync_change(crm_id, instant(modified, "LastModifiedDate"), fields, properties)

    return _change("Salesforce", crm_id, build)


_PIPEDRIVE_CONSUMED = {
    "id",
    "title",
    "value",
    "currency",
    "stage_id",
    "pipeline_id",
    "owner_id",
    "org_id",
    "expected_close_date",
    "add_time",
    "update_time",
    "status",
    "custom_fields",
}


def pipedrive_change(record: dict[str, Any]) -> DealChange:
    """A Pipedrive API v2 deal as a DealChange; custom fields land in `properties` under
    their 40-hex-character keys, beside the other deal attributes."""
    crm_id = _id(record.get("id"))
    if crm_id is None:
        raise CrmResponseError("Pipedrive deal without an id")

    def build() -> DealChange:
        modified = record.get("update_time") or record.get("add_time")
        if not modified:
            raise ValueError("no update_time")
        fields: dict[str, Any] = {}
        renames = {
            "stage_id": "stage",
            "pipeline_id": "pipeline",
            "owner_id": "owner_id",
            "org_id": "account_id",
        }
        for raw, canonical in renames.items():
            if raw in record:
                fields[canonical] = _id(record[raw])
        if "title" in record:
            fields["name"] = record["title"]
        if "value" in record:
            fields["amount"] = decimal_text(record["value"], "value")
        if "currency" in record:
            fields["currency"] = record["currency"] or None
        if "expected_close_date" in record:
            fields["close_date"] = iso_date(record["expected_close_date"], "expected_close_date")
        if "add_time" in record:
            fields["created_at"] = _iso_time(record["add_time"], "add_time")
        if record.get("status") in ("open", "won", "lost"):
            fields["status"] = record["status"]
        properties = {k: v for k, v in record.items() if k not in _PIPEDRIVE_CONSUMED}
        custom = record.get("custom_fields")
        if isinstance(custom, dict):
            properties.update(custom)
        return _resync_change(crm_id, instant(modified, "update_time"), fields, properties)

    return _change("Pipedrive", crm_id, build)


HUBSPOT_ENGAGEMENT_OBJECTS: dict[str, str] = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
    "note": "notes",
}
HUBSPOT_ENGAGEMENT_TITLES = (
    "hs_call_title",
    "hs_email_subject",
    "hs_meeting_title",
    "hs_task_subject",
    "hs_note_body",
)


def hubspot_activity(record: dict[str, Any], kind: ActivityKind) -> ActivityChange:
    """A HubSpot engagement object (call, email, meeting, task, note) with its deal
    association as an ActivityChange linked to deal and owner."""
    crm_id = _id(record.get("id"))
    props = record.get("properties")
    if crm_id is None or not isinstance(props, dict):
        raise CrmResponseError("HubSpot engagement without an id or properties")
    modified = props.get("hs_lastmodifieddate") or record.get("updatedAt")
    happened = props.get("hs_timestamp") or props.get("hs_createdate") or modified
    if not modified or not happened:
        raise CrmResponseError(f"HubSpot engagement {crm_id} has no timestamps")
    associations = record.get("associations")
    deals = associations.get("deals") if isinstance(associations, dict) else None
    results = deals.get("results") if isinstance(deals, dict) else None
    deal_ids = [_id(r.get("id")) for r in results or [] if isinstance(r, dict)]
    changed = instant(modified, "hs_lastmodifieddate")
    return ActivityChange(
        crm_id=crm_id,
        event_key=_activity_key(crm_id, changed),
        occurred_at=instant(happened, "hs_timestamp"),
        changed_at=changed,
        kind=kind,
        deal_crm_id=next((d for d in deal_ids if d), None),
        rep_crm_id=_id(props.get("hubspot_owner_id")),
        properties={k: props[k] for k in HUBSPOT_ENGAGEMENT_TITLES if props.get(k)},
    )


def salesforce_activity(record: dict[str, Any], entity: str) -> ActivityChange:
    """A Task or Event record (sobject GET or a query row) as an ActivityChange, read the
    way its change event is, stamped with its LastModifiedDate."""
    crm_id = _id(record.get("Id"))
    if crm_id is None:
        raise CrmResponseError(f"Salesforce {entity} without an Id")
    modified = record.get("LastModifiedDate") or record.get("SystemModstamp")
    try:
        changed = instant(modified, "LastModifiedDate")
    except ValueError as exc:
        raise CrmResponseError(f"Salesforce {entity} {crm_id} cannot be read: {exc}") from exc
    values = {k: v for k, v in record.items() if k != "attributes" and v is not None}
    return activity_change(
        entity, crm_id, values, event_key=_activity_key(crm_id, changed), changed_at=changed
    )


def _activity_key(crm_id: str, changed: datetime) -> str:
    """Like a deal's re-sync key: re-fetching an unchanged activity dedupes."""
    return f"resync:activity:{crm_id}:{changed.isoformat()}"


# --- clients ---------------------------------------------------------------------------


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


class _CrmClient:
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


class HubSpotClient(_CrmClient):
    """HubSpot CRM v3 objects API. `extra_properties` are asked for beside the standard
    deal properties (custom ones to keep); `page_size` is at most 100."""

    crm = "HubSpot"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        extra_properties: Sequence[str] = (),
        page_size: int = 100,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        if not 1 <= page_size <= 100:
            raise ValueError("HubSpot pages hold 1 to 100 objects")
        self.page_size = page_size
        self.properties = ",".join(dict.fromkeys([*HUBSPOT_PROPERTIES, *extra_properties]))

    def _quota_pause(self, response: httpx.Response) -> float | None:
        if _number_header(response, "X-HubSpot-RateLimit-Remaining") == 0:
            interval = _number_header(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
            return interval / 1000 if interval and interval > 0 else 10.0
        if _number_header(response, "X-HubSpot-RateLimit-Secondly-Remaining") == 0:
            return 1.0
        return None

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        body = await self._get_json(
            f"{self.base_url}/crm/v3/objects/deals/{quote(crm_id, safe='')}",
            {"properties": self.properties, "associations": "companies"},
            not_found_ok=True,
        )
        if body is None:
            return None
        record = _as_dict(body, self.crm, f"deal {crm_id}")
        if record.get("archived") is True:
            return None
        return hubspot_change(record)

    async def fetch_activity(self, kind: ActivityKind, crm_id: str) -> ActivityChange | None:
        """An engagement with its deal association; None when HubSpot no longer has it."""
        objects = HUBSPOT_ENGAGEMENT_OBJECTS[kind]
        body = await self._get_json(
            f"{self.base_url}/crm/v3/objects/{objects}/{quote(crm_id, safe='')}",
            {
                "properties": ",".join(
                    (
                        "hs_timestamp",
                        "hs_lastmodifieddate",
                        "hubspot_owner_id",
                        *HUBSPOT_ENGAGEMENT_TITLES,
                    )
                ),
                "associations": "deals",
            },
            not_found_ok=True,
        )
        if body is None:
            return None
        return hubspot_activity(_as_dict(body, self.crm, f"{kind} {crm_id}"), kind)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {
                "limit": str(self.page_size),
                "properties": self.properties,
                "associations": "companies",
            }
            if after is not None:
                params["after"] = after
            body = _as_dict(
                await self._get_json(f"{self.base_url}/crm/v3/objects/deals", params),
                self.crm,
                "deal list",
            )
            for record in _as_list(body.get("results"), self.crm, "deal list results"):
                yield hubspot_change(_as_dict(record, self.crm, "deal"))
            paging = body.get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            after = _id(nxt.get("after")) if isinstance(nxt, dict) else None
            if after is None:
                return
            if after in seen:
                raise CrmResponseError("HubSpot paging came back to a cursor it gave before")
            seen.add(after)


class SalesforceClient(_CrmClient):
    """Salesforce REST API on Opportunity. The list query is
    `SELECT FIELDS(STANDARD)[, custom__c...] FROM Opportunity`: every standard field (with
    CurrencyIsoCode in multi-currency orgs) without naming it, so no org lacks a field
    asked for; `extra_fields` ending in `__c` add custom fields. A single GET returns every
    field the token may read."""

    crm = "Salesforce"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        extra_fields: Sequence[str] = (),
        api_version: str = SALESFORCE_API_VERSION,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        self.api_version = api_version
        # Standard fields are in FIELDS(STANDARD) already; naming one twice is an error.
        custom = [f for f in extra_fields if f.lower().endswith("__c")]
        selected = ", ".join(["FIELDS(STANDARD)", *dict.fromkeys(custom)])
        self.soql = f"SELECT {selected} FROM Opportunity"
        self.api_usage: tuple[int, int] | None = None
        """(used, limit) from the last `Sforce-Limit-Info: api-usage=N/M` header."""

    def _refused_for_limit(self, response: httpx.Response) -> bool:
        return response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.content

    def _after(self, response: httpx.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info", "")
        for part in info.split(";"):
            name, _, value = part.strip().partition("=")
            used, _, limit = value.partition("/")
            if name == "api-usage" and used.isdigit() and limit.isdigit():
                self.api_usage = (int(used), int(limit))
                if int(limit) and int(used) >= int(limit) * 0.9:
                    _log.warning("Salesforce API usage is at %s of the daily limit", value)

    @property
    def _data(self) -> str:
        return f"{self.base_url}/services/data/{self.api_version}"

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        body = await self._get_json(
            f"{self._data}/sobjects/Opportunity/{quote(crm_id, safe='')}", not_found_ok=True
        )
        if body is None:
            return None
        return salesforce_change(_as_dict(body, self.crm, f"Opportunity {crm_id}"))

    async def fetch_activity(self, kind: ActivityKind, crm_id: str) -> ActivityChange | None:
        """A Task ("meeting": an Event) as it is now; None once Salesforce answers 404 (a
        deleted record: ENTITY_IS_DELETED while in the recycle bin, NOT_FOUND after)."""
        entity = activity_entity(kind)
        body = await self._get_json(
            f"{self._data}/sobjects/{entity}/{quote(crm_id, safe='')}", not_found_ok=True
        )
        if body is None:
            return None
        return salesforce_activity(_as_dict(body, self.crm, f"{entity} {crm_id}"), entity)

    async def iter_activities(self, kind: ActivityKind) -> AsyncIterator[ActivityChange]:
        """Every Task ("meeting": every Event), page by page. A query leaves out deleted
        and archived activities, as the UI does."""
        entity = activity_entity(kind)
        async for record in self._query(f"SELECT FIELDS(STANDARD) FROM {entity}"):
            yield salesforce_activity(_as_dict(record, self.crm, entity), entity)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        async for record in self._query(self.soql):
            yield salesforce_change(_as_dict(record, self.crm, "Opportunity"))

    async def _query(self, soql: str) -> AsyncIterator[Any]:
        """The records of a SOQL query: one paging loop for deals and activities, so each
        follows nextRecordsUrl only on the instance."""
        url: str = f"{self._data}/query"
        params: dict[str, str] | None = {"q": soql}
        seen: set[str] = set()
        while True:
            body = _as_dict(await self._get_json(url, params), self.crm, "query result")
            for record in _as_list(body.get("records"), self.crm, "query records"):
                yield record
            next_url = body.get("nextRecordsUrl")
            if body.get("done") is True or not next_url:
                return
            url = self._same_origin(str(next_url))
            if url in seen:
                raise CrmResponseError("Salesforce paging came back to an earlier nextRecordsUrl")
            seen.add(url)
            params = None

    def _same_origin(self, next_url: str) -> str:
        """nextRecordsUrl is a path on the instance; the token goes nowhere else."""
        base = httpx.URL(self.base_url + "/")
        url = base.join(next_url)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise CrmResponseError(
                f"Salesforce nextRecordsUrl ({shape(next_url)}) leaves the instance"
            )
        return str(url)


class PipedriveClient(_CrmClient):
    """Pipedrive API v2 deals, authenticated by the `x-api-token` header. `page_size` is
    at most 500. A deal Pipedrive reports deleted counts as not found."""

    crm = "Pipedrive"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        page_size: int = 500,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        if not 1 <= page_size <= 500:
            raise ValueError("Pipedrive pages hold 1 to 500 deals")
        self.page_size = page_size

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"x-api-token": token}

    def _quota_pause(self, response: httpx.Response) -> float | None:
        if _number_header(response, "x-ratelimit-remaining") == 0:
            reset = _number_header(response, "x-ratelimit-reset")
            return reset if reset and reset > 0 else 2.0
        return None

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        if not crm_id.isdigit():
            raise ValueError(f"Pipedrive deal ids are integers, not {crm_id!r}")
        body = await self._get_json(f"{self.base_url}/api/v2/deals/{crm_id}", not_found_ok=True)
        if body is None:
            return None
        data = _as_dict(body, self.crm, f"deal {crm_id}").get("data")
        if data is None:
            return None
        record = _as_dict(data, self.crm, f"deal {crm_id} data")
        if record.get("is_deleted") is True or record.get("status") == "deleted":
            return None
        return pipedrive_change(record)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(self.page_size)}
            if cursor is not None:
                params["cursor"] = cursor
            body = _as_dict(
                await self._get_json(f"{self.base_url}/api/v2/deals", params),
                self.crm,
                "deal list",
            )
            for record in _as_list(body.get("data") or [], self.crm, "deal list data"):
                deal = _as_dict(record, self.crm, "deal")
                if deal.get("is_deleted") is True or deal.get("status") == "deleted":
                    continue
                yield pipedrive_change(deal)
            extra = body.get("additional_data")
            cursor = _id(extra.get("next_cursor")) if isinstance(extra, dict) else None
            if cursor is None:
                return
            if cursor in seen:
                raise CrmResponseError("Pipedrive paging came back to a cursor it gave before")
            seen.add(cursor)


def client_for(
    source: SourceIn,
    http: httpx.AsyncClient,
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    on_rotated: Callable[[str], Awaitable[None]] | None = None,
) -> ResyncClient:
    """The re-sync client for a source, by its kind. The source's `keep_properties` are
    asked for too (HubSpot properties, Salesforce `__c` fields; Pipedrive sends all).

    A Salesforce source with `oauth` authenticates by the refresh token flow, and
    `on_rotated` is handed each new refresh token to store."""
    base = (source.api_base_url or "").strip()
    token: str | Credentials = (
        source.api_token.get_secret_value() if source.api_token is not None else ""
    )
    if source.oauth is not None and source.oauth.refresh_token is not None:
        token = SalesforceRefreshToken(source.oauth, http, on_rotated=on_rotated, sleep=sleep)
    if missing := resync_missing(source):
        raise ValueError(
            f"source {source.id!r} ({source.kind}) cannot be re-synced: "
            f"{' and '.join(missing)} not set"
        )
    keep = source.mapping.keep_properties
    if source.kind == "hubspot":
        return HubSpotClient(base, token, http, extra_properties=keep, policy=policy, sleep=sleep)
    if source.kind == "salesforce":
        return SalesforceClient(base, token, http, extra_fields=keep, policy=policy, sleep=sleep)
    if source.kind == "pipedrive":
        return PipedriveClient(base, token, http, policy=policy, sleep=sleep)
    raise ValueError(f"no re-sync client for source kind {source.kind!r}")


# --- running a re-sync -------------------------------------------------------------------


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
