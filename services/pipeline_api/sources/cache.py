"""Sources by kind, kept in memory for a few seconds.

Every webhook needs its kind's sources to authenticate; reading them per request cost about
half the server's CPU for single-event deliveries (webhook benchmark). Writes through this
process invalidate at once; other replicas see a change within `ttl` seconds, during which
a delivery signed with a just-rotated secret gets a 401 and the CRM retries it.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.sources import repository
from services.pipeline_api.sources.schemas import SourceIn


class SourceCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 5.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._by_kind: dict[str, tuple[float, list[SourceIn]]] = {}

    async def enabled(self, kind: str) -> list[SourceIn]:
        return [s for s in await self._of_kind(kind) if s.enabled]

    async def disabled(self, kind: str) -> list[SourceIn]:
        """The disabled ones: a HubSpot batch may carry a disabled portal's events, kept
        under its own source for a replay once it is enabled again
        (crm/hubspot/adapter.py)."""
        return [s for s in await self._of_kind(kind) if not s.enabled]

    async def _of_kind(self, kind: str) -> list[SourceIn]:
        cached = self._by_kind.get(kind)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        async with self._sessions() as session:
            sources = await repository.sources_of_kind(session, kind=kind)
        self._by_kind[kind] = (time.monotonic(), sources)
        return sources

    def invalidate(self) -> None:
        self._by_kind.clear()
