"""Runs re-sync jobs: fetch deals from a CRM's API and ingest them like webhook changes.

Jobs come from gap and merge events, restores, and `POST /v1/sources/{id}/resync`. A
fetched deal becomes an "updated" change stamped with the CRM's last-modified time, so it
orders correctly against webhook changes and a second fetch of an unchanged deal dedupes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import cast

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api import repository
from services.pipeline_api.connectors.changes import (
    ActivityChange,
    ActivityKind,
    DealChange,
    to_json,
)
from services.pipeline_api.connectors.mapping import Parked
from services.pipeline_api.event_log import EventLogWriter, LogRow
from services.pipeline_api.ingest import to_row
from services.pipeline_api.resync import HubSpotClient, client_for, resync_all, resync_deals
from services.pipeline_api.sources import SourceIn

_log = logging.getLogger("salesops.resync")

FLUSH_EVERY = 200


class ResyncWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        writer: EventLogWriter,
        http: httpx.AsyncClient,
        poll_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._http = http
        self._poll_seconds = poll_seconds
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            async with self._sessions() as session, session.begin():
                job = await repository.claim_resync_job(session)
                claimed = (
                    (job.id, job.source_id, list(job.crm_ids), job.activity_kind) if job else None
                )
            if claimed is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self._poll_seconds)
                continue
            await self._run_job(*claimed)

    async def _run_job(
        self, job_id: int, source_id: str, crm_ids: list[str], activity_kind: str | None
    ) -> None:
        async with self._sessions() as session:
            source = await repository.get_source(session, source_id)
        progress = 0
        try:
            if source is None:
                raise RuntimeError(f"source {source_id!r} no longer exists")
            if activity_kind is not None:
                progress = await self._fetch_activities(job_id, source, crm_ids, activity_kind)
            else:
                progress = await self._fetch(job_id, source, crm_ids)
            status, error = "done", None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job records why; the worker goes on with the next
            _log.warning("re-sync job %s failed", job_id, exc_info=True)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        async with self._sessions() as session, session.begin():
            await repository.finish_resync_job(
                session, job_id, status=status, progress=progress, error=error
            )

    async def _fetch(self, job_id: int, source: SourceIn, crm_ids: list[str]) -> int:
        client = client_for(source, self._http)
        pending: list[DealChange] = []
        seen = 0

        async def on_change(change: DealChange) -> None:
            nonlocal seen
            pending.append(change)
            seen += 1
            if len(pending) >= FLUSH_EVERY:
                await self._flush(source, pending, job_id, seen)

        if crm_ids:
            _, missing = await resync_deals(client, crm_ids, on_change)
            if len(crm_ids) > 1 and len(missing) == len(crm_ids):
                # Every deal "gone" more likely means a wrong api_base_url than a purge;
                # recording deletions for all of them would be a silent data loss.
                raise RuntimeError(
                    f"the CRM answered 404 for all {len(crm_ids)} deals; check api_base_url"
                )
            now = datetime.now(UTC)
            for crm_id in missing:
                # The CRM no longer has it: record the deletion at the time we learned it.
                pending.append(
                    DealChange(
                        crm_id=crm_id,
                        event_key=f"resync-gone:{job_id}:{crm_id}",
                        occurred_at=now,
                        op="deleted",
                    )
                )
        else:
            await resync_all(client, on_change)
        await self._flush(source, pending, job_id, seen)
        return seen

    async def _fetch_activities(
        self, job_id: int, source: SourceIn, crm_ids: list[str], kind: str
    ) -> int:
        client = client_for(source, self._http)
        if not isinstance(client, HubSpotClient):
            raise RuntimeError(f"activity re-sync is not available for {source.kind}")
        fetched: list[DealChange | ActivityChange] = []
        for crm_id in crm_ids:
            activity = await client.fetch_activity(cast(ActivityKind, kind), crm_id)
            if activity is not None:
                fetched.append(activity)
        await self._flush(source, fetched, job_id, len(fetched))
        return len(fetched)

    async def _flush(
        self,
        source: SourceIn,
        changes: list[DealChange] | list[DealChange | ActivityChange],
        job_id: int,
        seen: int,
    ) -> None:
        rows: list[LogRow] = []
        parked = []
        for change in changes:
            result = to_row(source, change)
            if isinstance(result, Parked):
                parked.append(
                    {
                        "source_id": source.id,
                        "request_id": None,
                        "reason": result.reason,
                        "replayable": result.replayable,
                        "change": to_json(change),
                    }
                )
            else:
                rows.append(result)
        changes.clear()
        async with self._sessions() as session, session.begin():
            await repository.park(session, parked)
            await repository.report_progress(session, job_id, seen)
        if rows:
            await self._writer.append(rows)
