"""The merge sweep: a deal change stored while its account was being merged moves after all.

A merge re-points the deals the log shows on the merged account once its alias is
committed (webhooks/ingest.py). A delivery that read the aliases before that (in flight meanwhile,
or answered by a replica whose `AliasCache` had not expired yet) stores its deal on the
merged account, maybe after the merge's look-up. So every few seconds each replica looks
again for the deals on the accounts merged within a window: longer than any delivery
takes from its read of the aliases to its commit, cache TTL included, so the sweeps after
such a row is durable find it. The updates reuse the merge's key per deal, so a second
sweep, or one by another replica, stores nothing new.

Driven by the table, so a killed process loses nothing; the first sweep after a start
covers every merge, for the replicas may all have been down past the window. Without a
recent merge a sweep is one look-up of an empty range of `ix_account_aliases_recorded_at`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.accounts import merges as account_merges
from services.pipeline_api.accounts import repository
from services.pipeline_api.events.event_log import EventLogWriter, LogRow
from services.pipeline_api.sources.repository import get_source
from services.pipeline_api.webhooks.ingest import to_row

_log = logging.getLogger("salesops.merge_sweep")


async def sweep(
    *,
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    max_future: timedelta,
    within: timedelta | None,
) -> int:
    """Re-point the deals now on an account merged within `within` (on any merged account
    when None). Returns how many updates this stored; a merge dated in the future was
    parked by its delivery and is left to it."""
    async with sessions() as session:
        recent = await repository.account_aliases_recorded_since(session, within=within)
        merged: dict[str, set[str]] = {}
        for alias in recent:
            merged.setdefault(alias.source_id, set()).add(alias.merged_id)
        sources = [await get_source(session, source_id=source_id) for source_id in merged]
    stored = 0
    for source in filter(None, sources):
        rows = [
            row
            for change in await account_merges.repointed(
                sessions, source=source, merged=merged[source.id]
            )
            if isinstance(
                row := to_row(
                    source, change, max_bytes=writer.max_event_bytes, max_future=max_future
                ),
                LogRow,
            )
        ]
        if rows:
            stored += sum(r is True for r in await writer.append_each(rows))
    return stored


async def sweep_merges(
    *,
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    max_future: timedelta,
    every: float,
    window: timedelta,
) -> None:
    """Sweep every `every` seconds, looking back `window` (the first time, at everything)."""
    within: timedelta | None = None
    while True:
        stored = await sweep(sessions=sessions, writer=writer, max_future=max_future, within=within)
        if stored:
            _log.info("moved %d deals stored on accounts being merged", stored)
        within = window
        await asyncio.sleep(every)
