"""Bearer API keys with scopes.

Keys are compared by SHA-256 digest through a dict lookup, so the time taken does not
depend on how much of a guessed key matched. The `admin` scope implies every other scope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.problems import Problem

ADMIN = "admin"
EVENTS_WRITE = "events:write"
EVENTS_READ = "events:read"
FORECAST_READ = "forecast:read"

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


class ApiKeys:
    def __init__(self, keys: Mapping[str, list[str]]) -> None:
        self._by_digest = {
            _digest(k): Principal(key_id=_digest(k)[:12], scopes=frozenset(s))
            for k, s in keys.items()
        }

    def lookup(self, key: str) -> Principal | None:
        return self._by_digest.get(_digest(key))


_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request only if its key carries `scope`."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise Problem(401, "A bearer API key is required.", headers=_UNAUTHORIZED_HEADERS)
        keys: ApiKeys = request.state.api_keys
        principal = keys.lookup(credentials.credentials)
        if principal is None:
            raise Problem(401, "The API key is not valid.", headers=_UNAUTHORIZED_HEADERS)
        if not principal.allows(scope):
            raise Problem(403, f"The API key lacks the {scope!r} scope.")
        return principal

    return dependency


Admin = Annotated[Principal, Depends(require(ADMIN))]
"""A route parameter that admits only admin keys."""
