"""uvicorn factory for the benchmark: the intake service alone, configured from the environment.

Run as `python -m uvicorn benchmarks.server:create_app --factory`. Settings come from the
usual `SALESOPS_*` variables (database URL, broker, `SALESOPS_API_KEYS` as JSON), exactly as
`salesops serve pipeline_api` reads them, so the benchmark measures the production wiring.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.pipeline_api.app import SPEC
from shared.logging import configure_logging
from shared.service import build_app
from shared.settings import Settings


def create_app() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return build_app(settings, [SPEC], title=SPEC.title)
