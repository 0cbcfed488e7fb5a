"""RFC 9457 problem details for every error a client can see.

Each problem has a stable `type` URI so clients can branch on it; `errors` lists what was
wrong and where. Unhandled exceptions still become a problem (500) without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db_errors import is_transient

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://salesops.dev/problems/"

_log = logging.getLogger("salesops.problems")

_TITLES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` lists what was wrong and where.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["location", "message"],
                "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for statuses a route answers with a problem document."""
    return {
        status: {
            "description": _TITLES.get(status, "error").replace("-", " ").capitalize(),
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }


class Problem(Exception):
    """Raise to answer with a problem document; `extensions` are extra members (RFC 9457
    section 3.2), such as the failing checks of /readyz."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _TITLES.get(status, "error")
        self.title = title or self.slug.replace("-", " ").capitalize()
        self.errors = errors
        self.headers = headers
        self.extensions = extensions


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    if problem.errors:
        body["errors"] = problem.errors
    if problem.extensions:
        body.update(problem.extensions)
    return JSONResponse(
        body,
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=dict(problem.headers) if problem.headers else None,
    )


def storage_unavailable(what: str) -> Problem:
    """503 for a store that failed mid-request: nothing was acknowledged, so retry."""
    return Problem(503, f"Storage is unavailable; {what}.", headers={"Retry-After": "5"})


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            request, Problem(exc.status_code, str(exc.detail), headers=exc.headers)
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return problem_response(
            request,
            Problem(422, "The request is not valid; see errors.", errors=errors),
        )

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            # The database is away or overloaded: nothing was done, the client may retry.
            _log.warning("storage unavailable on %s %s: %r", request.method, request.url.path, exc)
            return problem_response(
                request,
                storage_unavailable("retry later"),
            )
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, Problem(500, "An unexpected error occurred."))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unhandled)
