"""uvicorn factory for the freshness benchmark: every service on one app, as `salesops dev`
composes it (intake, relay, forecast worker and its read API), configured from the
environment like `benchmarks.server`.

Run as `python -m uvicorn benchmarks.stack_server:create_app --factory`.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.cli import compose_all
from shared.logging import configure_logging
from shared.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return compose_all(settings)
