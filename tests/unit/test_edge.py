"""Pieces of the API edge: the guard of the route the router picks, bearer parsing, NUL
detection, bounded types, and the statuses derived for the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message

from services.cli import compose_all
from shared import auth
from shared.edge import (
    MAX_BODY_STATE,
    OWN_BODY_LIMIT,
    GuardedRoute,
    document_statuses,
    install_edge,
)
from shared.problems import Problem, install_problem_handlers
from shared.settings import Settings
from shared.values import Id64, Int64, UtcDatetime, json_has_nul


def _router() -> APIRouter:
    router = APIRouter(route_class=GuardedRoute)

    @router.get("/open/{x}")
    async def open_route(x: str) -> None: ...

    @router.get("/things/{thing_id}")
    async def read_thing(thing_id: str, _: auth.Admin) -> None: ...

    @router.put("/things/{thing_id}")
    async def write_thing(
        thing_id: str,
        body: dict[str, int],
        _: Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_WRITE))],
    ) -> None: ...

    @router.post("/intake", openapi_extra={OWN_BODY_LIMIT: "SALESOPS_INTAKE_MAX_BYTES"})
    async def intake(
        body: dict[str, int],
        _: Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_WRITE))],
    ) -> None: ...

    @router.get("/files/{path:path}")
    async def files(path: str, _: auth.Admin) -> None: ...

    return router


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    install_edge(app, [router])
    return app


async def _call(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], root_path: str = ""
) -> tuple[int, bool]:
    """Status of a request to `app`, and whether anything read its body."""
    read: list[bool] = []
    sent: list[Message] = []

    async def receive() -> Message:
        read.append(True)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("test", 80),
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "state": {"api_keys": auth.ApiKeys({"k": [auth.ADMIN]}), MAX_BODY_STATE: 1000},
    }
    await app(scope, receive, send)
    return sent[0]["status"], bool(read)


ADMIN_HEADER = [(b"authorization", b"Bearer k")]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/open/1", 200),
        ("GET", "/things/7", 401),
        ("GET", "/things/7\n", 401),  # `$` matches before a final newline: same route
        ("PUT", "/things/7", 401),
        ("POST", "/intake", 401),
        ("POST", "/intake\n", 401),
        ("GET", "/files/a/b", 401),
        ("GET", "/files/a/b\nc", 404),  # no DOTALL in the router's patterns
        ("DELETE", "/things/7", 405),
        ("POST", "/intake\r", 404),
        ("POST", "/intake\n\n", 404),
    ],
)
async def test_the_guard_runs_for_the_route_the_router_picks(
    method: str, path: str, status: int
) -> None:
    assert await _call(_app(_router()), method, path, []) == (status, False)


async def test_an_admitted_request_reaches_its_handler_with_its_body() -> None:
    app = _app(_router())
    assert await _call(app, "PUT", "/things/7\n", ADMIN_HEADER) == (200, True)
    large = [*ADMIN_HEADER, (b"content-length", b"1001")]
    assert await _call(app, "PUT", "/things/7", large) == (413, False)
    assert await _call(app, "POST", "/intake", large) == (200, True)  # its own limit


async def test_the_guard_matches_the_path_the_router_sees_behind_a_proxy_root_path() -> None:
    app = _app(_router())
    assert await _call(app, "GET", "/things/7", [], root_path="/api") == (401, False)
    assert await _call(app, "GET", "/things/7", ADMIN_HEADER, root_path="/a\x00") == (200, False)
    assert await _call(app, "GET", "/things/a\x00", ADMIN_HEADER) == (422, False)


async def test_routes_added_to_the_app_later_are_guarded() -> None:
    app = _app(_router())

    async def late(_: auth.Admin) -> None: ...

    app.add_api_route("/late", late, methods=["POST"])
    assert await _call(app, "POST", "/late", []) == (401, False)


def test_a_key_protected_route_without_its_guard_is_refused_at_build() -> None:
    router = APIRouter()

    @router.post("/unguarded")
    async def unguarded(_: auth.Admin) -> None: ...

    with pytest.raises(TypeError, match="unguarded"):
        _app(router)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_authorize_answers_401_then_403() -> None:
    keys = auth.ApiKeys({"k": [auth.EVENTS_READ]})
    assert auth.authorize(keys, "k", {auth.EVENTS_READ}).allows(auth.EVENTS_READ)
    for token, status in ((None, 401), ("wrong", 401), ("k", 403)):
        with pytest.raises(Problem) as refused:
            auth.authorize(keys, token, {auth.ADMIN})
        assert refused.value.status == status


async def test_require_checks_its_scope_on_a_principal_handed_over() -> None:
    reader = auth.Principal("r", frozenset({auth.EVENTS_READ}))
    request = Request({"type": "http", "state": {auth.PRINCIPAL_STATE: reader}})
    assert await auth.require(auth.EVENTS_READ)(request, None) is reader
    with pytest.raises(Problem) as refused:
        await auth.require(auth.ADMIN)(request, None)
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("body", "nul"),
    [
        (b'{"a": "b"}', False),
        (b'{"a": "\\u0000"}', True),
        (b'{"a\\u0000": 1}', True),
        (b'{"a": "\\\\u0000"}', False),  # an escaped backslash, then the text u0000
        (b'{"a": "\\\\\\u0000"}', True),  # an escaped backslash, then a NUL
        (b'{"a": "x\x00"}', True),
    ],
)
def test_json_has_nul(body: bytes, nul: bool) -> None:
    assert json_has_nul(body) is nul


def test_bounded_integers() -> None:
    assert TypeAdapter(Int64).validate_python(-(2**63)) == -(2**63)
    for value in (2**63, -(2**63) - 1):
        with pytest.raises(ValidationError):
            TypeAdapter(Int64).validate_python(value)
    for value in (0, 2**63):
        with pytest.raises(ValidationError):
            TypeAdapter(Id64).validate_python(value)


def test_utc_datetime() -> None:
    adapter = TypeAdapter(UtcDatetime)
    assert adapter.validate_python("2026-01-01T05:00:00+05:00") == datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ("2026-01-01T00:00:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_document_statuses_derives_problems_from_what_an_operation_declares() -> None:
    validation = {"content": {"application/json": {"schema": {"$ref": "#/x"}}}}
    spec = {
        "paths": {
            "/a": {
                "post": {
                    "security": [{"HTTPBearer": []}],
                    "requestBody": {},
                    "parameters": [{"in": "query", "name": "cursor"}],
                    "responses": {"200": {}, "422": validation},
                },
                "get": {"responses": {"200": {}}},
            }
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    documented = document_statuses(spec)
    post = documented["paths"]["/a"]["post"]["responses"]
    assert set(post) == {"200", "400", "401", "403", "413", "422"}
    assert list(post["422"]["content"]) == ["application/problem+json"]
    assert "WWW-Authenticate" in post["401"]["headers"]
    assert set(documented["paths"]["/a"]["get"]["responses"]) == {"200"}
    assert set(documented["components"]["schemas"]) == {"Problem"}


async def test_the_composed_app_guards_every_operation_that_requires_a_key() -> None:
    """Each secured operation of the composed app answers 401 to a request without a key
    and reads none of its body (a route whose guard is missing would read it first)."""
    app = compose_all(Settings(database_url="postgresql://unused/x", kafka_bootstrap_servers="x:1"))
    secured = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
        if operation.get("security")
    ]
    assert len(secured) > 10
    assert [op for op in secured if await _call(app, *op, []) != (401, False)] == []
