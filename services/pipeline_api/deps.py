"""What a pipeline_api route may ask for, each as a typed `Annotated` alias.

The lifespan (app.py) builds one `PipelineState`; routes never read the request's state
themselves. `WriteSession` commits when the route returns and before the response is
sent (`scope="function"`), so nothing answers 2xx before its data is committed, and a
route that raises rolls back; `ReadSession` gives its connection back to the pool before
the response is sent, so a slow client holds none.

Every provider is `async def` although none awaits anything: FastAPI runs a plain `def`
dependency on a worker thread, and the hops cost the intake a fifth of its throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.accounts.merges import AliasCache
from services.pipeline_api.crm.outbound import OutboundPolicy
from services.pipeline_api.events.event_log import EventLogWriter
from services.pipeline_api.events.relay import Relay
from services.pipeline_api.sources.cache import SourceCache
from shared import auth
from shared.service import state_of
from shared.settings import Settings


@dataclass(frozen=True)
class PipelineState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    writer: EventLogWriter
    relay: Relay
    sources: SourceCache
    aliases: AliasCache
    outbound: OutboundPolicy
    resync_wake: asyncio.Event


async def _state(request: Request) -> PipelineState:
    return state_of(request, PipelineState)


State = Annotated[PipelineState, Depends(_state)]


async def _settings(state: State) -> Settings:
    return state.settings


async def _sessions(state: State) -> async_sessionmaker[AsyncSession]:
    return state.sessions


async def _read_session(state: State) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


async def _write_session(state: State) -> AsyncIterator[AsyncSession]:
    """Commits after the route returned; a route that raised is rolled back on close."""
    async with state.sessions() as session:
        yield session
        await session.commit()


async def _writer(state: State) -> EventLogWriter:
    return state.writer


async def _relay(state: State) -> Relay:
    return state.relay


async def _source_cache(state: State) -> SourceCache:
    return state.sources


async def _alias_cache(state: State) -> AliasCache:
    return state.aliases


async def _outbound(state: State) -> OutboundPolicy:
    return state.outbound


async def _max_future(state: State) -> timedelta:
    return state.settings.event_max_future


async def _resync_wake(state: State) -> asyncio.Event:
    return state.resync_wake


@dataclass(frozen=True)
class WebhookIntake:
    """What a webhook route needs, as one dependency: each dependency is a call on every
    request, and a webhook needs five parts of the state."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    event_log: EventLogWriter
    sources: SourceCache
    aliases: AliasCache


async def _webhook_intake(state: State) -> WebhookIntake:
    return WebhookIntake(
        settings=state.settings,
        sessions=state.sessions,
        event_log=state.writer,
        sources=state.sources,
        aliases=state.aliases,
    )


SettingsDep = Annotated[Settings, Depends(_settings)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
"""For work that spans several transactions (webhook ingest, replays)."""
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]
EventLog = Annotated[EventLogWriter, Depends(_writer)]
RelayDep = Annotated[Relay, Depends(_relay)]
SourceCacheDep = Annotated[SourceCache, Depends(_source_cache)]
AliasCacheDep = Annotated[AliasCache, Depends(_alias_cache)]
Outbound = Annotated[OutboundPolicy, Depends(_outbound)]
MaxFuture = Annotated[timedelta, Depends(_max_future)]
"""How far ahead of our clock an entering event may be dated (the setting)."""
ResyncWake = Annotated[asyncio.Event, Depends(_resync_wake)]
WebhookDeps = Annotated[WebhookIntake, Depends(_webhook_intake)]
EventsWriter = Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_WRITE))]
"""A key that may send events (to the sources it is bound to); admin keys are `auth.Admin`."""
EventsReader = Annotated[auth.Principal, Depends(auth.require(auth.EVENTS_READ))]
