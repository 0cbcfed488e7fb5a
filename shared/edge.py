"""The ASGI edge of every key-protected route: authenticate first, then bound the body.

`EdgeGuard` is a pure ASGI middleware (BaseHTTPMiddleware would cost every request a task
and a copy). It knows each route's declared scopes (`auth.require`, `auth.Admin`) from a
table built once with the app, and finds a request's route with one regular expression
over method and path, in the router's own order. For a key-protected route it runs before
FastAPI reads or parses anything: a missing or wrong key is a 401 and a missing scope a
403 at the cost of a header lookup; then the path and query are checked for NUL characters
(PostgreSQL refuses them in text), and the body is counted while it streams in, refused
with 413 past the cap whether or not it declared a Content-Length. Other requests (CRM
webhooks, health) pass through after that one match.

A route that reads its body itself under its own limit (the event intake) says so with
`OWN_BODY_LIMIT` in its `openapi_extra`; the edge then leaves its body alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import PRINCIPAL_STATE, SCOPE_OF, ApiKeys, authorize, bearer_token
from shared.problems import PROBLEM_SCHEMA, Problem, problem_response, problem_responses
from shared.values import json_has_nul

OWN_BODY_LIMIT = "x-body-limit-setting"
"""`openapi_extra` key of a route that enforces its own body limit; the value names the
setting, so the spec tells clients where the limit comes from."""


def route_scopes(dependant: Dependant) -> frozenset[str]:
    """Every scope a route's dependencies require, however deeply they are nested."""

    def walk(node: Dependant) -> Iterator[str]:
        scope = SCOPE_OF.get(node.call) if node.call is not None else None
        if scope is not None:
            yield scope
        for child in node.dependencies:
            yield from walk(child)

    return frozenset(walk(dependant))


@dataclass(frozen=True, slots=True)
class Rule:
    """What the edge enforces on one key-protected route."""

    scopes: frozenset[str]
    max_body: int | None


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


class RouteTable:
    """Maps `METHOD path` to the rule of the route the router would pick, or None."""

    def __init__(self, routes: Iterable[BaseRoute], max_body: int) -> None:
        alternatives: list[str] = []
        self._rules: list[Rule | None] = []
        for route in routes:
            if not isinstance(route, APIRoute):
                continue
            scopes = route_scopes(route.dependant)
            own_limit = OWN_BODY_LIMIT in (route.openapi_extra or {})
            rule = Rule(scopes, None if own_limit else max_body) if scopes else None
            # Only the outer group of each alternative captures, so `lastindex` names it.
            path = _NAMED_GROUP.sub("(?:", route.path_regex.pattern.strip("^$"))
            methods = "|".join(sorted(route.methods or ()))
            alternatives.append(f"((?:{methods}) {path})")
            self._rules.append(rule)
        self._pattern = re.compile("|".join(alternatives) or "(?!)", re.DOTALL)

    def rule(self, method: str, path: str) -> Rule | None:
        match = self._pattern.fullmatch(f"{method} {path}")
        return self._rules[match.lastindex - 1] if match and match.lastindex else None


class EdgeGuard:
    __slots__ = ("app", "table")

    def __init__(self, app: ASGIApp, table: RouteTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The path the router matches (without a proxy's root_path), found as it finds it.
        rule = self.table.rule(scope["method"], get_route_path(scope))
        if rule is None:
            await self.app(scope, receive, send)
            return
        try:
            bounded = _admit(scope, receive, rule)
        except Problem as problem:
            # Outside FastAPI's exception handlers: answer here, the way they would.
            await problem_response(Request(scope), problem)(scope, receive, send)
            return
        await self.app(scope, bounded, send)


def _admit(scope: Scope, receive: Receive, rule: Rule) -> Receive:
    """Authenticate, check path and query; the `receive` to read the body through."""
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    state = scope["state"]
    keys: ApiKeys = state["api_keys"]
    state[PRINCIPAL_STATE] = authorize(keys, bearer_token(authorization), rule.scopes)
    if "\x00" in scope["path"] or _query_has_nul(scope["query_string"]):
        raise Problem(422, "The path and query must not contain NUL characters.")
    if rule.max_body is None:
        return receive
    _check_declared_length(scope, rule.max_body)
    return _bounded(receive, rule.max_body)


def _query_has_nul(query: bytes) -> bool:
    return b"%00" in query or b"\x00" in query


def _too_large(limit: int) -> str:
    return f"The body is larger than the limit of {limit} bytes."


def _check_declared_length(scope: Scope, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise Problem(413, _too_large(limit))
            return


def _bounded(receive: Receive, limit: int) -> Receive:
    """`receive` that counts body bytes as they arrive and checks the whole body for NUL
    characters once it is complete (it is at most `limit` bytes, so keeping it is cheap).

    It raises Starlette's HTTPException, because FastAPI turns any other error raised while
    it reads a body into a 400; the problem handler renders it as a problem document."""
    chunks: list[bytes] = []
    size = 0

    async def bounded_receive() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, _too_large(limit))
            chunks.append(chunk)
            if not message.get("more_body", False) and json_has_nul(b"".join(chunks)):
                raise HTTPException(422, "The body must not contain NUL characters.")
        return message

    return bounded_receive


_CHALLENGE = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
_PROBLEM_4XX = ("400", "401", "403", "404", "409", "413", "415", "422")


def edge_statuses(operation: dict[str, Any]) -> set[int]:
    """The problem statuses an operation can answer because of what it declares: a security
    requirement (401, 403, and 422 for NUL in its path or query), a body (400 unreadable,
    413 too large, 422 invalid), parameters (422, and 400 for a forged `cursor`)."""
    statuses: set[int] = set()
    parameters = operation.get("parameters", [])
    if operation.get("security"):
        statuses |= {401, 403, 422}
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if parameters:
        statuses.add(422)
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        statuses.add(400)
    return statuses


def document_statuses(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the derived problem statuses to every operation of an OpenAPI document, point
    every 4xx at the Problem schema (FastAPI documents its 422 with its own shape, which
    our handlers never send), and add that schema."""
    problem = problem_responses(*range(400, 500), 503)
    for path, methods in spec.get("paths", {}).items():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            statuses = edge_statuses(operation)
            if path.startswith("/v1/"):
                statuses.add(503)  # every /v1 operation reads or writes the database
            for status in statuses:
                responses.setdefault(str(status), problem[status])
            if operation.get("security"):
                responses["401"] = {**responses["401"], "headers": _CHALLENGE}
            for status, response in responses.items():
                if status in _PROBLEM_4XX and "application/json" in response.get("content", {}):
                    response["content"] = problem[int(status)]["content"]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install_edge(app: FastAPI, routes: Sequence[BaseRoute], max_body: int) -> None:
    """Guard `routes` (the app's, in routing order) and document what the edge answers."""
    app.add_middleware(EdgeGuard, table=RouteTable(routes, max_body))
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_statuses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
