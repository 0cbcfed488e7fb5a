"""uvicorn factories for the benchmarks: one service per process, configured from the
environment, as `salesops serve <service>` runs it in production.

Run as `python -m uvicorn benchmarks.server:create_app --factory` (pipeline_api: intake and
relay) or `benchmarks.server:create_forecast_worker` (the forecast consumer and its read
API). Settings come from the usual `SALESOPS_*` variables (database URL, broker,
`SALESOPS_API_KEYS` as JSON), exactly as `salesops serve` reads them, so the benchmark
measures the production wiring.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.forecast_worker.app import SPEC as FORECAST_WORKER
from services.pipeline_api.app import SPEC as PIPELINE_API
from shared.logging import configure_logging
from shared.service import ServiceSpec, build_app
from shared.settings import Settings


def _serve(spec: ServiceSpec) -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return build_app(settings, [spec], title=spec.title)


def create_app() -> FastAPI:
    return _serve(PIPELINE_API)


def create_forecast_worker() -> FastAPI:
    return _serve(FORECAST_WORKER)
