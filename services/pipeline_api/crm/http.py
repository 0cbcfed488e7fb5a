"""GET requests to a CRM's REST API, shared by every CRM's client.

`CrmHttp` retries 429, 5xx and connection errors with exponential backoff plus jitter,
honours `Retry-After` (seconds or HTTP date), retries what a CRM's `refused_for_limit`
says is a rate limit (Salesforce's 403 REQUEST_LIMIT_EXCEEDED), and pauses on its own when
its `quota_pause` says a quota header shows nothing left (HubSpot
X-HubSpot-RateLimit-Remaining, Pipedrive x-ratelimit-remaining). A refused token (401/403)
or any other 4xx fails at once with a message that gives the CRM's status and error code,
never the token nor the body's text (outbound.py says which hosts are called at all).

Every body is parsed with `exact_json`, as webhook bodies are, so an amount is never a
float on its way to decimal text, and no number is expanded before its size is checked.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from services.pipeline_api.crm.credentials import Credentials
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.crm.values import shape

_log = logging.getLogger("salesops.resync")

Sleep = Callable[[float], Awaitable[None]]

_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z_]{0,47}")


def error_code(body: Any) -> str | None:
    """The error code a CRM's error body names (HubSpot `category`, Salesforce
    `errorCode`, OAuth and Pipedrive `error`), when it is a short identifier: never the
    body's free text, which is the CRM's (or whoever answered) and may echo anything."""
    items = body if isinstance(body, list) else [body]
    for item in items[:3]:
        if not isinstance(item, dict):
            continue
        for name in ("errorCode", "category", "errorType", "error"):
            value = item.get(name)
            if isinstance(value, str) and _ERROR_CODE.fullmatch(value):
                return value
    return None


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


def number_header(response: httpx.Response, name: str) -> float | None:
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


def as_dict(value: Any, crm: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CrmResponseError(f"{crm} {what} is not a JSON object but {shape(value)}")
    return value


def as_list(value: Any, crm: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CrmResponseError(f"{crm} {what} is not a JSON array but {shape(value)}")
    return value
