"""What a forecast_worker route may ask for, each as a typed `Annotated` alias.

The lifespan (app.py) builds one `ForecastState`; routes never read `request.state`
themselves. `WriteSession` commits when the route returns and before the response is sent
(`scope="function"`); a route that raises is rolled back. `ReadSession` gives its
connection back before the response is sent. Providers are `async def` so that FastAPI
does not run them on a worker thread (see the pipeline_api deps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.config.replays import DeadLetterReplays
from services.forecast_worker.config.repository import load_config
from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable
from shared import auth
from shared.consumer import ConsumerSpec
from shared.service import state_of
from shared.settings import Settings


@dataclass(frozen=True)
class ForecastState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    consumer: ConsumerSpec
    replays: DeadLetterReplays


async def _state(request: Request) -> ForecastState:
    return state_of(request, ForecastState)


State = Annotated[ForecastState, Depends(_state)]


async def _read_session(state: State) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


async def _write_session(state: State) -> AsyncIterator[AsyncSession]:
    """Commits after the route returned; a route that raised is rolled back on close."""
    async with state.sessions() as session:
        yield session
        await session.commit()


async def _sessions(state: State) -> async_sessionmaker[AsyncSession]:
    return state.sessions


async def _settings(state: State) -> Settings:
    return state.settings


async def _consumer(state: State) -> ConsumerSpec:
    return state.consumer


async def _replays(state: State) -> DeadLetterReplays:
    return state.replays


ForecastReader = Annotated[auth.Principal, Depends(auth.require(auth.FORECAST_READ))]
ForecastWriter = Annotated[auth.Principal, Depends(auth.require(auth.FORECAST_WRITE))]
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]
# For work that spans transactions (the route opens and commits each one itself), or reads
# on a second connection beside its ReadSession, concurrently.
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
SettingsDep = Annotated[Settings, Depends(_settings)]
# The consumer's own tables and dispatch, for routes that act on its dead letters.
Consumer = Annotated[ConsumerSpec, Depends(_consumer)]
# The worker's background replay of the dead letters a new forecast configuration mends.
Replays = Annotated[DeadLetterReplays, Depends(_replays)]


async def _config(db: ReadSession) -> ForecastConfig:
    return await load_config(db)


async def _stages(config: CurrentConfig) -> StageTable:
    return StageTable.of(config)


# The forecast configuration as stored when the request came in (read once per request),
# and the stage rules the roll-ups apply, built from it.
CurrentConfig = Annotated[ForecastConfig, Depends(_config)]
Stages = Annotated[StageTable, Depends(_stages)]
