"""Salesforce re-syncs authenticated by a connected app's refresh token.

A Salesforce access token dies with the org's session timeout, so a fixed `api_token`
stops working; a source with a connected app's refresh token (`SourceIn.oauth`) gets
access tokens from the OAuth 2.0 refresh token flow instead, fetched on first use and again
whenever Salesforce answers 401 (`CrmHttp` asks `renew`). The fixed-token CRMs need
nothing of this: `adapter.TokenAdapter` hands their clients the token as it is.

    POST {token_url}  grant_type=refresh_token&client_id=...&client_secret=...&refresh_token=...
      200 {"access_token", "instance_url", "id", "token_type": "Bearer", "issued_at",
           "signature", "scope"[, "refresh_token" when the app rotates refresh tokens]}
      400 {"error": "invalid_grant", "error_description": "expired access/refresh token"}

With refresh token rotation on, the old refresh token stops working once a new one is
issued, so `on_rotated` must store the new one before the next re-sync needs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from services.pipeline_api.crm.credentials import CredentialsError
from services.pipeline_api.crm.http import error_code

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SalesforceOAuth

_log = logging.getLogger("salesops.resync")

TOKEN_ATTEMPTS = 3


class SalesforceRefreshToken:
    """Access tokens from a connected app's refresh token, one at a time.

    Concurrent requests share one token request (a lock), and a 401 renews only the token
    it was answered for, so a burst of 401s from one expiry costs a single token request.
    """

    def __init__(
        self,
        oauth: SalesforceOAuth,
        http: httpx.AsyncClient,
        *,
        on_rotated: Callable[[str], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if oauth.refresh_token is None:
            raise ValueError("Salesforce OAuth needs a refresh_token")
        self._oauth = oauth
        self._refresh_token = oauth.refresh_token.get_secret_value()
        self._http = http
        self._on_rotated = on_rotated
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._access_token: str | None = None
        self.instance_url: str | None = None
        self.token_requests = 0

    def __repr__(self) -> str:  # never a token
        return f"SalesforceRefreshToken({self._oauth.token_url!r}, {self._oauth.client_id!r})"

    async def headers(self) -> dict[str, str]:
        if self._access_token is None:
            await self._fetch(stale=None)
        return self._headers()

    async def renew(self, refused: dict[str, str]) -> bool:
        await self._fetch(stale=refused.get("Authorization"))
        return True

    def _headers(self) -> dict[str, str]:
        assert self._access_token is not None
        return {"Authorization": f"Bearer {self._access_token}"}

    async def _fetch(self, *, stale: str | None) -> None:
        """Get an access token, unless one other than `stale` came while we waited."""
        async with self._lock:
            if self._access_token is not None and self._headers()["Authorization"] != stale:
                return
            body = await self._request()
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise CredentialsError("Salesforce's token answer has no access_token")
            self._access_token = token
            instance = body.get("instance_url")
            self.instance_url = instance if isinstance(instance, str) else None
            rotated = body.get("refresh_token")
            if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
                self._refresh_token = rotated
                if self._on_rotated is not None:
                    await self._on_rotated(rotated)

    async def _request(self) -> dict[str, object]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self._oauth.client_id,
            "refresh_token": self._refresh_token,
        }
        if self._oauth.client_secret is not None:
            form["client_secret"] = self._oauth.client_secret.get_secret_value()
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            self.token_requests += 1
            try:
                response = await self._http.post(
                    self._oauth.token_url, data=form, headers={"Accept": "application/json"}
                )
            except httpx.TransportError as exc:
                if attempt == TOKEN_ATTEMPTS:
                    raise CredentialsError(
                        f"Salesforce's token endpoint could not be reached: {type(exc).__name__}"
                    ) from exc
                await self._sleep(0.5 * 2**attempt)
                continue
            if response.status_code >= 500 and attempt < TOKEN_ATTEMPTS:
                _log.warning(
                    "Salesforce token endpoint answered %d; retrying", response.status_code
                )
                await self._sleep(0.5 * 2**attempt)
                continue
            return _token_answer(response)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _token_answer(response: httpx.Response) -> dict[str, object]:
    """The token endpoint's JSON answer. A refusal is told by its OAuth error code only
    (`invalid_grant`): the description and the body are not repeated into job errors."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise CredentialsError(
            f"Salesforce refused to issue an access token ({response.status_code} "
            f"{error_code(body) or 'no error code'}); check the source's oauth client_id, "
            "client_secret and refresh_token"
        )
    return body
