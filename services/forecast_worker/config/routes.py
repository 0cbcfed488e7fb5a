"""Read and replace the forecast configuration (pipelines, stages, fiscal calendar)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response

from services.forecast_worker.config import repository
from services.forecast_worker.config.schemas import ForecastConfig, ReplayStatus
from services.forecast_worker.deals import stage_check
from services.forecast_worker.deps import (
    Consumer,
    CurrentConfig,
    ForecastReader,
    ReadSession,
    Replays,
    WriteSession,
)
from shared import auth, consumer_store
from shared.edge import GuardedRoute
from shared.problems import problem_responses

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)
TO_REPLAY_HEADER = "X-Dead-Letters-To-Replay"


@router.get(
    "/v1/forecast/config",
    response_model=ForecastConfig,
    summary="The forecast configuration (empty until one is stored)",
)
async def get_config(_: ForecastReader, config: CurrentConfig) -> ForecastConfig:
    return config


@router.get(
    "/v1/forecast/config/replay",
    response_model=ReplayStatus,
    summary="Whether the dead letters the stored configuration may mend were replayed",
)
async def get_replay_status(_: ForecastReader, db: ReadSession) -> ReplayStatus:
    state = await repository.replay_state(db)
    return ReplayStatus(
        version=state.version, replayed_for=state.replayed_for, pending=state.pending
    )


@router.put(
    "/v1/forecast/config",
    response_model=ForecastConfig,
    summary="Replace the whole forecast configuration; answers it as stored",
    description="Deal events dead-lettered for a stage or pipeline the configuration did "
    "not know (`unknown_stage`, `unknown_pipeline`) are replayed once the new configuration "
    "is committed, by the worker in the background, oldest first and a page per "
    "transaction: those it knows are applied and marked replayed "
    "(`GET /v1/forecast/dead-letters?include_replayed=true`), the others stay open. "
    f"`{TO_REPLAY_HEADER}` says how many such letters were open when it was stored; "
    "`GET /v1/forecast/config/replay` says when the replay is done.",
    responses={
        200: {
            "headers": {
                TO_REPLAY_HEADER: {
                    "description": "Open dead letters the replay will try, counted when the "
                    "configuration was stored",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        },
        **problem_responses(422),
    },
)
async def put_config(
    _: auth.Admin,
    db: WriteSession,
    consumer: Consumer,
    replays: Replays,
    config: ForecastConfig,
    response: Response,
    background: BackgroundTasks,
) -> ForecastConfig:
    stored = await repository.replace_config(db, config=config)
    waiting = await consumer_store.count_open_dead_letters(
        await db.connection(), tables=consumer.tables, codes=stage_check.CODES
    )
    response.headers[TO_REPLAY_HEADER] = str(waiting)
    background.add_task(replays.wake)  # after the response, so after the commit
    return stored
