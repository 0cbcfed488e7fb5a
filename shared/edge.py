"""The edge of every key-protected route: authenticate first, then bound the body.

Every router serves its routes through `GuardedRoute`. FastAPI reads and parses a body
inside the handler a route builds (`get_route_handler`); a guarded route puts its check in
front of that handler, so it runs for exactly the route the router picked, whichever
spelling of the path got there (a final `%0A` still matches a route's `^...$`), and for
routes added to an app later. For a route with declared scopes (`auth.require`,
`auth.Admin`) a missing or wrong key is a 401 and a missing scope a 403 at the cost of a
header lookup, before anything is read; then the path and query are checked for NUL
characters (PostgreSQL refuses them in text), and the body is counted while it streams in,
refused with 413 past the cap whether or not it declared a Content-Length. A route without
scopes (CRM webhooks, health) keeps FastAPI's handler untouched and costs nothing.

A route that reads its body itself under its own limit (the event intake) says so with
`OWN_BODY_LIMIT` in its `openapi_extra`; the guard then leaves its body alone. The cap of
the others comes from request state (`MAX_BODY_STATE`), as routes are built at import.

A route that documents a YAML request body (`yaml_bodies.yaml_request_body`) takes one: once
the key is checked and within the cap, a YAML body is read into the same document in JSON
and handed on, so FastAPI validates it, and names each error, as it would the JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope

from shared.auth import PRINCIPAL_STATE, SCOPE_OF, ApiKeys, authorize, bearer_token
from shared.problems import PROBLEM_SCHEMA, Problem, problem_responses
from shared.values import json_has_nul
from shared.yaml_bodies import YAML_MEDIA_TYPE, as_json_request, is_yaml, yaml_body_declared

OWN_BODY_LIMIT = "x-body-limit-setting"
"""`openapi_extra` key of a route that enforces its own body limit; the value names the
setting, so the spec tells clients where the limit comes from."""

MAX_BODY_STATE = "api_max_body_bytes"
"""Where build_app's lifespan leaves the body cap of key-protected routes."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def route_scopes(dependant: Dependant) -> frozenset[str]:
    """Every scope a route's dependencies require, however deeply they are nested."""

    def walk(node: Dependant) -> Iterator[str]:
        scope = SCOPE_OF.get(node.call) if node.call is not None else None
        if scope is not None:
            yield scope
        for child in node.dependencies:
            yield from walk(child)

    return frozenset(walk(dependant))


class GuardedRoute(APIRoute):
    """An APIRoute whose handler authenticates and bounds the body before FastAPI reads it.

    The scopes are those of the route's own dependencies (a router's dependencies are
    part of them); `build_app` includes routers without adding any."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        scopes = route_scopes(self.dependant)
        if not scopes:
            return handler
        own_limit = OWN_BODY_LIMIT in (self.openapi_extra or {})
        takes_yaml = yaml_body_declared(self.openapi_extra)

        async def guarded(request: Request) -> Response:
            scope = request.scope
            limit = None if own_limit else scope["state"][MAX_BODY_STATE]
            receive = _admit(scope, request.receive, scopes, limit)
            if receive is not request.receive:
                request = Request(scope, receive)
            if takes_yaml and is_yaml(request.headers.get("content-type")):
                request = await as_json_request(request)
            return await handler(request)

        return guarded


def unguarded_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """Key-protected routes that would be authenticated only after their body is read."""
    return [
        f"{sorted(route.methods or ())} {route.path}"
        for route in routes
        if isinstance(route, APIRoute)
        and not isinstance(route, GuardedRoute)
        and route_scopes(route.dependant)
    ]


def _admit(scope: Scope, receive: Receive, scopes: frozenset[str], limit: int | None) -> Receive:
    """Authenticate, check path and query; the `receive` to read the body through."""
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    state = scope["state"]
    keys: ApiKeys = state["api_keys"]
    state[PRINCIPAL_STATE] = authorize(keys, bearer_token(authorization), scopes)
    # The path the router matched (without a proxy's root_path), as it matched it.
    if "\x00" in get_route_path(scope) or _query_has_nul(scope["query_string"]):
        raise Problem(422, "The path and query must not contain NUL characters.")
    if limit is None:
        return receive
    _check_declared_length(scope, limit)
    return _bounded(receive, limit)


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


def _yaml_schema(operation: dict[str, Any]) -> None:
    """Give a YAML request body the JSON body's schema: it is the same document."""
    content = operation.get("requestBody", {}).get("content", {})
    if YAML_MEDIA_TYPE in content and "application/json" in content:
        schema = content["application/json"].get("schema", {})
        content[YAML_MEDIA_TYPE] = {"schema": schema, **content[YAML_MEDIA_TYPE]}


def document_statuses(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the derived problem statuses to every operation of an OpenAPI document, point
    every 4xx at the Problem schema (FastAPI documents its 422 with its own shape, which
    our handlers never send), give YAML bodies their JSON schema, and add that schema."""
    problem = problem_responses(*range(400, 500), 503)
    for path, methods in spec.get("paths", {}).items():
        for operation in methods.values():
            _yaml_schema(operation)
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


def install_edge(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Refuse to serve a key-protected route without its guard, make routes added to
    `app` later guarded too, and document what the guard answers."""
    unguarded = unguarded_routes(route for router in routers for route in router.routes)
    if unguarded:
        raise TypeError(f"routes without route_class=GuardedRoute: {unguarded}")
    app.router.route_class = GuardedRoute
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_statuses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
