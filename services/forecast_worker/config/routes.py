"""Read and replace the forecast configuration (pipelines, stages, fiscal calendar)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from services.forecast_worker.config import repository
from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.deals import stage_check
from services.forecast_worker.deps import Consumer, CurrentConfig, ForecastReader, WriteSession
from shared import auth
from shared.consumer import replay_open
from shared.edge import GuardedRoute
from shared.problems import problem_responses

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)
log = logging.getLogger("salesops.forecast.config")

REPLAYED_HEADER = "X-Replayed-Dead-Letters"


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
    description="Deal events dead-lettered for a stage or pipeline the configuration did "
    "not know (`unknown_stage`, `unknown_pipeline`) are replayed in the same transaction, "
    "oldest first: those the new configuration knows are applied and marked replayed, the "
    f"others stay open. `{REPLAYED_HEADER}` says how many were applied.",
    responses={
        200: {
            "headers": {
                REPLAYED_HEADER: {
                    "description": "Dead letters the new configuration applied",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        },
        **problem_responses(422),
    },
)
async def put_config(
    _: auth.Admin, db: WriteSession, consumer: Consumer, config: ForecastConfig, response: Response
) -> ForecastConfig:
    stored = await repository.replace_config(db, config=config)
    replayed = await replay_open(
        await db.connection(), spec=consumer, codes=stage_check.CODES, log=log
    )
    if replayed:
        log.info("the new forecast configuration applied %d dead letters", replayed)
    response.headers[REPLAYED_HEADER] = str(replayed)
    return stored
