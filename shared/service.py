"""How a service is assembled into an ASGI app, alone or together with the others.

A service is routers plus a lifespan that yields its piece of request state (and starts
its background work). `build_app` turns one or more of them into a FastAPI app with the
house conventions: problem details, request ids, authentication at the edge of every
key-protected route, every status documented, `/healthz`, `/readyz`, `/metrics`.
`salesops dev` passes all three, so one base URL serves everything.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.auth import ApiKeys
from shared.edge import MAX_BODY_STATE, GuardedRoute, install_edge
from shared.kafka import backoff_sleep, cancelled_for_real
from shared.logging import RequestIdMiddleware
from shared.problems import (
    Problem,
    install_problem_handlers,
    problem_response,
    problem_responses,
)
from shared.settings import Settings

_log = logging.getLogger("salesops.service")

ReadinessCheck = Callable[[], Awaitable[None]]


S = TypeVar("S")

SERVICES_STATE = "services"
"""Where `build_app` keeps each service's typed state in request state, keyed by its type."""


@dataclass
class ServiceState:
    """What a service's lifespan hands to its request handlers.

    `state` is the service's own typed object (settings, session factories, writers);
    its routes reach it through `state_of`, wrapped in the `Annotated` aliases of the
    service's `deps.py`, never through untyped `request.state` attributes.
    """

    state: object = None
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)


def state_of(request: Request, kind: type[S]) -> S:
    """The typed state the service of type `kind` put in request state at start-up."""
    value = request.state.services[kind]
    assert isinstance(value, kind)
    return value


Lifespan = Callable[[Settings], AbstractAsyncContextManager[ServiceState]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    routers: Sequence[APIRouter]
    lifespan: Lifespan


STABLE_SECONDS = 60.0
"""A run at least this long was healthy: the backoff after its crash starts over, so a loop
that fails once a day waits the first step, not the cap its earlier crashes reached."""


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    stable_after: float = STABLE_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[int], Awaitable[None]] = backoff_sleep,
) -> None:
    """Keep a background loop running: a crash is logged and the loop restarted with
    backoff, so a process never goes on answering HTTP while its real work has stopped.
    The backoff grows while runs keep failing soon after they start (`stable_after`)."""
    attempt = 0
    while True:
        started = clock()
        try:
            await run()
            return
        except asyncio.CancelledError:
            if cancelled_for_real():
                raise
            _log.warning("%s ended on a stray cancellation; restarting it", name)
        except Exception:
            _log.exception("%s crashed; restarting it", name)
        attempt = 1 if clock() - started >= stable_after else attempt + 1
        await pause(attempt)


health_router = APIRouter(tags=["operations"], route_class=GuardedRoute)


@health_router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


@health_router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: database and broker reachable",
    description="503 is a problem document whose `checks` says which check fails and how.",
    responses=problem_responses(503),
)
async def readyz(request: Request) -> ReadyOut | JSONResponse:
    checks: dict[str, ReadinessCheck] = request.state.readiness
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=3)
            results[name] = "ok"
        except Exception as exc:  # readiness reports every failure, whatever its kind
            results[name] = f"failing: {type(exc).__name__}"
    if all(v == "ok" for v in results.values()):
        return ReadyOut(status="ready", checks=results)
    failing = ", ".join(name for name, v in results.items() if v != "ok")
    return problem_response(
        request, Problem(503, f"Not ready: {failing}.", extensions={"checks": results})
    )


@health_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (CPython's default is
700). A worker's batch allocates tens of thousands of short-lived objects (decoded events,
changes, versions, rows), almost all freed by reference counting; at 700 the collector ran
about 30 times a batch and took 7-17 µs of each event's 80-160 µs of Python (measured on
batches of 500 deal events, benchmarks/RESULTS.md), at 10,000 under 1 µs. A young
collection then scans at most this many objects: about a millisecond."""


def freeze_startup_objects() -> None:
    """Move everything allocated by imports and start-up out of the collector's reach, and
    collect the young generation less often (`YOUNG_COLLECTION_THRESHOLD`).

    Those ~130k long-lived objects made every full collection pause the event loop for
    70-93 ms under load, which alone pushed webhook p99 past its 100 ms target (see
    benchmarks/RESULTS.md). Frozen objects are never collected, which is right for
    modules, classes and app wiring that live as long as the process.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


def build_app(settings: Settings, specs: Sequence[ServiceSpec], *, title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            state: dict[str, Any] = {
                "api_keys": ApiKeys(settings.api_keys),
                MAX_BODY_STATE: settings.api_max_body_bytes,
                "readiness": {},
                SERVICES_STATE: {},
            }
            for spec in specs:
                piece = await stack.enter_async_context(spec.lifespan(settings))
                if piece.state is not None:
                    state[SERVICES_STATE][type(piece.state)] = piece.state
                state["readiness"].update(piece.readiness)
            freeze_startup_objects()
            yield state

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    routers = [health_router, *(router for spec in specs for router in spec.routers)]
    for router in routers:
        app.include_router(router)
    install_edge(app, routers)
    app.add_middleware(RequestIdMiddleware)  # outermost: the edge's refusals carry the id too
    return app
