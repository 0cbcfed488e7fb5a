"""The summariser: a background task of the forecast worker that keeps the summary tables
(`summary.models`) close behind the deals, so that a metrics or inspection request finds
little to catch up on itself.

It runs `repository.catch_up` every `SALESOPS_SUMMARY_CHECK_SECONDS`, each in its own
transaction, and never on the consumer's apply path: the consumer only sets the deals'
`updated_at`, as it did before. A worker that starts on a database it never summarised
summarises every deal in its first step (a backfill, one transaction)."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.forecast_worker.summary.repository import catch_up
from shared.settings import Settings

_log = logging.getLogger(__name__)


async def summarise(sessions: async_sessionmaker[AsyncSession]) -> int:
    """One catch-up, committed; the number of deals summarised again."""
    started = time.perf_counter()
    async with sessions() as session, session.begin():
        deals = await catch_up(session)
    if deals:
        _log.debug("summarised %d deals in %.3fs", deals, time.perf_counter() - started)
    return deals


async def run(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Catch up now and then every `summary_check_seconds`, for ever."""
    while True:
        await summarise(sessions)
        await asyncio.sleep(settings.summary_check_seconds)
