"""Pieces of the API edge: the guard of the route the router picks, bearer parsing, NUL
detection, bounded types, and the statuses derived for the OpenAPI document."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError
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
from shared.yaml_bodies import yaml_request_body


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


class _Plan(BaseModel):
    name: str
    start: date
    tiers: list[int]


def _yaml_app() -> FastAPI:
    router = APIRouter(route_class=GuardedRoute)

    @router.post("/plans", openapi_extra=yaml_request_body())
    async def add_plan(body: _Plan, _: auth.Admin) -> _Plan:
        return body

    @router.post("/json-only")
    async def json_only(body: _Plan, _: auth.Admin) -> _Plan:
        return body

    return _app(router)


async def _post(
    app: ASGIApp, path: str, content_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, Any, int]:
    """Status and JSON answer of a POST to `app`, and how many body chunks anything read."""
    chunks = [body[i : i + 600] for i in range(0, len(body), 600)] or [b""]
    read: list[bool] = []
    sent: list[Message] = []

    async def receive() -> Message:
        read.append(True)
        chunk = chunks[len(read) - 1]
        return {"type": "http.request", "body": chunk, "more_body": len(read) < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "server": ("test", 80),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", content_type), *headers],
        "state": {"api_keys": auth.ApiKeys({"k": [auth.ADMIN]}), MAX_BODY_STATE: 1000},
    }
    await app(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(answer), len(read)


PLAN_YAML = b"name: AE\nstart: 2026-01-01\ntiers: [1, 2]\n"
PLAN_JSON = b'{"name": "AE", "start": "2026-01-01", "tiers": [1, 2]}'


@pytest.mark.parametrize("media_type", [b"application/yaml", b"application/x-yaml", b"text/yaml"])
async def test_a_route_that_documents_yaml_takes_the_same_document_in_yaml(
    media_type: bytes,
) -> None:
    app = _yaml_app()
    as_json = await _post(app, "/plans", b"application/json", PLAN_JSON, ADMIN_HEADER)
    as_yaml = await _post(app, "/plans", media_type, PLAN_YAML, ADMIN_HEADER)
    assert as_yaml == as_json
    assert as_yaml[:2] == (200, {"name": "AE", "start": "2026-01-01", "tiers": [1, 2]})


async def test_a_yaml_body_is_read_only_after_the_key_and_within_the_cap() -> None:
    app = _yaml_app()
    yaml = b"application/yaml"
    status, answer, read = await _post(app, "/plans", yaml, PLAN_YAML, [])
    assert (status, answer["status"], read) == (401, 401, 0)
    large = [*ADMIN_HEADER, (b"content-length", b"1001")]
    status, _, read = await _post(app, "/plans", yaml, b"a: b\n" * 300, large)
    assert (status, read) == (413, 0)
    # Undeclared length: refused while it streams in, at the chunk that passes the cap.
    status, answer, read = await _post(app, "/plans", yaml, b"a: b\n" * 300, ADMIN_HEADER)
    assert (status, answer["title"], read) == (413, "Payload too large", 2)


async def test_a_yaml_body_that_does_not_validate_names_each_error_as_json_would() -> None:
    app = _yaml_app()
    bad_yaml = b"name: AE\nstart: 2026-13-01\ntiers: [1, x]\n"
    bad_json = b'{"name": "AE", "start": "2026-13-01", "tiers": [1, "x"]}'
    status, answer, _ = await _post(app, "/plans", b"application/yaml", bad_yaml, ADMIN_HEADER)
    assert status == 422
    assert [e["location"] for e in answer["errors"]] == ["body.start", "body.tiers.1"]
    assert (await _post(app, "/plans", b"application/json", bad_json, ADMIN_HEADER))[1] == answer


async def test_a_yaml_body_that_does_not_parse_answers_where() -> None:
    app = _yaml_app()
    body = b"name: AE\ntiers: [1, 2\nstart: 2026-01-01\n"
    status, answer, _ = await _post(app, "/plans", b"application/yaml", body, ADMIN_HEADER)
    assert status == 422
    assert answer["errors"] == [
        {"location": "body", "message": "expected ',' or ']', but got ':' at line 3, column 6"}
    ]


async def test_a_route_that_does_not_document_yaml_does_not_read_it() -> None:
    app = _yaml_app()
    status, answer, _ = await _post(app, "/json-only", b"application/yaml", PLAN_YAML, ADMIN_HEADER)
    assert status == 422
    assert [e["location"] for e in answer["errors"]] == ["body"]


def test_a_yaml_body_is_documented_with_the_json_body_s_schema() -> None:
    content = _yaml_app().openapi()["paths"]["/plans"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "application/yaml"}
    assert content["application/yaml"]["schema"] == content["application/json"]["schema"]
    assert content["application/yaml"]["schema"] == {"$ref": "#/components/schemas/_Plan"}
    only_json = _yaml_app().openapi()["paths"]["/json-only"]["post"]["requestBody"]["content"]
    assert set(only_json) == {"application/json"}


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
