"""What the pipeline_api lifespan hands each request, read with its type.

The lifespan (app.py) puts the session factory and the event log writer on
`request.state`; routes read them here rather than each re-annotating `request.state`.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.account_merges import AliasCache
from services.pipeline_api.event_log import EventLogWriter
from shared.problems import Problem
from shared.settings import Settings


def pipeline_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.state.pipeline_sessions
    return sessions


def event_log_writer(request: Request) -> EventLogWriter:
    writer: EventLogWriter = request.state.event_log_writer
    return writer


def alias_cache(request: Request) -> AliasCache:
    cache: AliasCache = request.state.alias_cache
    return cache


def max_future(request: Request) -> timedelta:
    """How far ahead of our clock an entering event may be dated (the setting)."""
    settings: Settings = request.state.settings
    return settings.event_max_future


def storage_unavailable(what: str) -> Problem:
    """503 for a store that failed mid-request: nothing was acknowledged, so retry."""
    return Problem(503, f"Storage is unavailable; {what}.", headers={"Retry-After": "5"})
