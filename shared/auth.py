"""Bearer API keys with scopes, optionally bound to event sources.

Keys are compared by SHA-256 digest through a dict lookup, so the time taken does not
depend on how much of a guessed key matched. The `admin` scope implies every other scope.

A key bound to sources (`{"scopes": [...], "sources": ["app://billing/*"]}`) writes and
reads only events whose CloudEvents `source` matches one of its fnmatch patterns (`*`
matches across `/` too). Sources of the `crm://` namespace are written only by the webhook
and re-sync paths, never through `/v1/events` by any key: an event posted there could
take the `(source, id)` of a CRM change not yet delivered, which would then be dropped as
a duplicate.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.problems import Problem
from shared.settings import ApiKeyGrant, key_id

ADMIN = "admin"
EVENTS_WRITE = "events:write"
EVENTS_READ = "events:read"
FORECAST_READ = "forecast:read"
FORECAST_WRITE = "forecast:write"
COMP_READ = "comp:read"
COMP_ADMIN = "comp:admin"

WEBHOOK_NAMESPACE = "crm://"
"""How webhook and re-sync events name their source (services/pipeline_api/crm/mapping.py)."""

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@lru_cache(maxsize=4096)
def in_webhook_namespace(source: str) -> bool:
    """Whether `source` is, or could be shown as, a `crm:` source: URI schemes are
    case-insensitive (`CRM://`), and a look-alike (`%63rm://`, fullwidth letters, a
    zero-width space inside) must not pass for another source on a screen or after
    someone normalises it."""
    text = source
    for _ in range(3):  # percent-encoding may be nested (%2563)
        text = unicodedata.normalize("NFKC", unquote(text))
    scheme, colon, _ = "".join(c for c in text if not _invisible(c)).strip().partition(":")
    return bool(colon) and scheme.strip().lower() == WEBHOOK_NAMESPACE.removesuffix("://")


@lru_cache(maxsize=4096)
def unprintable(source: str) -> bool:
    """Leading or trailing whitespace, or a control or format character: a source that
    would look like another one when shown. Both checks are cached by source: a batch
    names a handful of sources across up to a thousand events."""
    return source != source.strip() or any(_invisible(c) for c in source)


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf")


@dataclass(frozen=True)
class Principal:
    key_id: str
    scopes: frozenset[str]
    sources: tuple[str, ...] | None = None
    """fnmatch patterns of the event sources this key may use; None: every source."""
    rep_id: str | None = None
    """A rep's key: commission reads are limited to this rep."""
    manager_id: str | None = None
    """A manager's key: commission reads are limited to this rep and its reports."""

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def covers(self, source: str) -> bool:
        """The key's source binding admits `source` (for reading and writing)."""
        return self.sources is None or any(fnmatchcase(source, p) for p in self.sources)

    def may_write_source(self, source: str) -> bool:
        return not in_webhook_namespace(source) and self.covers(source)


def _principal(key: str, grant: list[str] | ApiKeyGrant) -> Principal:
    if isinstance(grant, ApiKeyGrant):
        sources = tuple(grant.sources) if grant.sources is not None else None
        return Principal(
            key_id(key), frozenset(grant.scopes), sources, grant.rep_id, grant.manager_id
        )
    return Principal(key_id(key), frozenset(grant))


class ApiKeys:
    def __init__(self, keys: Mapping[str, list[str] | ApiKeyGrant]) -> None:
        self._by_digest = {_digest(k): _principal(k, g) for k, g in keys.items()}

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
        _check_scope(principal, scope)
    return principal


def _check_scope(principal: Principal, scope: str) -> None:
    if not principal.allows(scope):
        raise Problem(403, f"The API key lacks the {scope!r} scope.")


SCOPE_OF: dict[Callable[..., Awaitable[Principal]], str] = {}
"""Each `require` dependency and its scope: the edge guard reads a route's scopes here."""


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request only if its key carries `scope`.

    Routes declare their scope with it; the route's guard (shared/edge.py) checks the key
    before the body is read and hands the principal over. The checks here stand if that
    hand-over ever comes from a guard that checked other scopes, or from none at all.
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
        if principal is not None:
            _check_scope(principal, scope)
            return principal
        token = credentials.credentials if credentials is not None else None
        return authorize(request.state.api_keys, token, (scope,))

    SCOPE_OF[dependency] = scope
    return dependency


Admin = Annotated[Principal, Depends(require(ADMIN))]
"""A route parameter that admits only admin keys."""
