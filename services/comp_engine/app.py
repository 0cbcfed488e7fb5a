"""Assembly of the comp_engine service. It has no routes or consumer yet (see the package
docstring); it runs so deployments and health checks already include it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.service import ServiceSpec, ServiceState, build_app
from shared.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[ServiceState]:
    yield ServiceState()


SPEC = ServiceSpec(name="comp_engine", title="salesops comp engine", routers=[], lifespan=lifespan)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or get_settings(), [SPEC], title=SPEC.title)
