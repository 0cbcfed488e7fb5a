"""What a comp_engine route may ask for, each as a typed `Annotated` alias (the same shape
as the forecast worker's deps: `WriteSession` commits after the route returns)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.comp_engine.access import visible_reps
from services.comp_engine.simulate.workers import Workers
from shared import auth
from shared.service import state_of
from shared.settings import Settings


@dataclass(frozen=True)
class CompState:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    simulate_workers: Workers | None = None
    """Stored simulations' worker processes (`SALESOPS_COMP_SIMULATE_PROCESSES` > 1)."""


async def _state(request: Request) -> CompState:
    return state_of(request, CompState)


State = Annotated[CompState, Depends(_state)]
"""The service's state (its settings), for routes that need more than a session."""


async def _read_session(state: State) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


async def _write_session(state: State) -> AsyncIterator[AsyncSession]:
    """Commits after the route returned; a route that raised is rolled back on close."""
    async with state.sessions() as session:
        yield session
        await session.commit()


CompReader = Annotated[auth.Principal, Depends(auth.require(auth.COMP_READ))]
CompAdmin = Annotated[auth.Principal, Depends(auth.require(auth.COMP_ADMIN))]
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
WriteSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]


async def _visible(principal: CompReader, db: ReadSession) -> frozenset[str] | None:
    return await visible_reps(db, principal)


Visible = Annotated[frozenset[str] | None, Depends(_visible)]
"""The reps the request's key may see (`access.py`); `None` for all."""
