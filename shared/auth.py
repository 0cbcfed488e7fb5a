"""Bearer API keys with scopes.

Keys are compared by SHA-256 digest through a dict lookup, so the time taken does not
depend on how much of a guessed key matched. The `admin` scope implies every other scope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
PRINCIPAL_STATE = "principal"
"""Where the edge guard (shared/edge.py) leaves the authenticated key in request state."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authorize(keys: ApiKeys, token: str | None, scopes: Iterable[str]) -> Principal:
    """The key's principal if it carries every scope; else a 401 or 403 problem."""
    if token is None:
        raise Problem(401, "A bearer API key is required.", headers=_UNAUTHORIZED_HEADERS)
    principal = keys.lookup(token)
    if principal is None:
        raise Problem(401, "The API key is not valid.", headers=_UNAUTHORIZED_HEADERS)
    for scope in scopes:
        if not principal.allows(scope):
            raise Problem(403, f"The API key lacks the {scope!r} scope.")
    return principal


SCOPE_OF: dict[Callable[..., Awaitable[Principal]], str] = {}
"""Each `require` dependency and its scope: the edge guard reads a route's scopes here."""


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request only if its key carries `scope`.

    Routes declare their scope with it; the edge guard build_app installs checks the key
    before the body is read and hands the principal over. The check here stands for
    routes that are served without that guard (added to an app after it was built).
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
        if principal is not None:
            return principal
        token = credentials.credentials if credentials is not None else None
        return authorize(request.state.api_keys, token, (scope,))

    SCOPE_OF[dependency] = scope
    return dependency


Admin = Annotated[Principal, Depends(require(ADMIN))]
"""A route parameter that admits only admin keys."""
