"""Read and replace the forecast configuration (pipelines, stages, fiscal calendar)."""

from __future__ import annotations

from fastapi import APIRouter

from services.forecast_worker.config import repository
from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.deps import CurrentConfig, ForecastReader, WriteSession
from shared import auth
from shared.edge import GuardedRoute
from shared.problems import problem_responses

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)


@router.get(
    "/v1/forecast/config",
    response_model=ForecastConfig,
    summary="The forecast configuration (empty until one is stored)",
)
async def get_config(_: ForecastReader, config: CurrentConfig) -> ForecastConfig:
    return config


@router.put(
    "/v1/forecast/config",
    response_model=ForecastConfig,
    summary="Replace the whole forecast configuration; answers it as stored",
    responses=problem_responses(422),
)
async def put_config(_: auth.Admin, db: WriteSession, config: ForecastConfig) -> ForecastConfig:
    return await repository.replace_config(db, config=config)
