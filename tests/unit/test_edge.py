"""Pure pieces of the API edge: route lookup, bearer parsing, NUL detection, bounded types,
and the statuses derived for the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from pydantic import TypeAdapter, ValidationError
from starlette.types import Message, Receive, Scope, Send

from services.cli import compose_all
from shared import auth
from shared.edge import OWN_BODY_LIMIT, EdgeGuard, RouteTable, document_statuses
from shared.problems import Problem
from shared.settings import Settings
from shared.values import Id64, Int64, UtcDatetime, json_has_nul


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/open/{x}")
    async def open_route(x: str) -> None: ...

    @router.get("/things/{thing_id}")
    async def read_thing(thing_id: str, _: auth.Admin) -> None: ...

    @router.put("/things/{thing_id}")
    async def write_thing(
        thing_id: str,
        _: Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_WRITE))],
    ) -> None: ...

    @router.post("/intake", openapi_extra={OWN_BODY_LIMIT: "SALESOPS_INTAKE_MAX_BYTES"})
    async def intake(
        _: Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_WRITE))],
    ) -> None: ...

    @router.get("/files/{path:path}")
    async def files(path: str, _: auth.Admin) -> None: ...

    return router


def test_route_table_finds_each_routes_scopes_and_limit() -> None:
    table = RouteTable(_router().routes, max_body=1000)
    assert table.rule("GET", "/open/1") is None
    assert table.rule("GET", "/nowhere") is None
    read = table.rule("GET", "/things/7")
    assert read is not None
    assert read.scopes == {auth.ADMIN}
    assert read.max_body == 1000
    write = table.rule("PUT", "/things/7")
    assert write is not None
    assert write.scopes == {auth.EVENTS_WRITE}
    assert table.rule("DELETE", "/things/7") is None  # the router answers 405
    intake = table.rule("POST", "/intake")
    assert intake is not None
    assert intake.max_body is None
    nested = table.rule("GET", "/files/a/b\nc")
    assert nested is not None
    assert nested.scopes == {auth.ADMIN}


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


async def test_guard_matches_the_path_the_router_sees_behind_a_proxy_root_path() -> None:
    reached: list[str] = []

    async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    guard = EdgeGuard(downstream, RouteTable(_router().routes, max_body=1000))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/things/7",
        "root_path": "/api",
        "query_string": b"",
        "headers": [],
        "state": {"api_keys": auth.ApiKeys({})},
    }
    await guard(scope, receive, send)
    assert reached == []
    assert sent[0]["status"] == 401
    await guard({**scope, "path": "/api/open/7"}, receive, send)
    assert reached == ["/api/open/7"]


def test_the_composed_app_guards_every_operation_that_requires_a_key() -> None:
    """Each secured operation of the spec is found in the edge's table, so none is
    authenticated only after FastAPI has read its body (a router nested in another would
    not be, and would fail here)."""
    app = compose_all(Settings(database_url="postgresql://unused/x", kafka_bootstrap_servers="x:1"))
    tables = [m.kwargs.get("table") for m in app.user_middleware]
    (table,) = [t for t in tables if isinstance(t, RouteTable)]
    secured = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
        if operation.get("security")
    ]
    assert len(secured) > 10
    assert [op for op in secured if table.rule(*op) is None] == []
