"""Runs re-sync jobs: fetch deals or activities from a CRM's API and ingest them like
webhook changes.

Jobs come from gap and merge events, restores, activities a webhook only names, and `POST
/v1/sources/{id}/resync`. A fetched record is stamped with the CRM's last-modified time,
so it orders correctly against webhook changes and a second fetch of an unchanged record
dedupes; a record the CRM answers 404 for is recorded as deleted.

A worker holds each job under a lease it renews while the job runs; if its process dies,
the lease runs out and another worker takes the job up again (a re-sync is idempotent), so
no job stays `running` forever. A job that killed its worker `MAX_ATTEMPTS` times fails.
A worker that finds its lease lost (it renewed too late and another took the job) stops
the job at once: progress and outcome are written only by the job's holder. A worker
stopped on purpose (a deploy) hands its job back as pending, and that is no attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import cast

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.crm.changes import (
    ActivityChange,
    ActivityKind,
    DealChange,
    Ignored,
    to_json,
)
from services.pipeline_api.crm.mapping import Parked
from services.pipeline_api.crm.outbound import OutboundPolicy
from services.pipeline_api.crm.registry import client_for
from services.pipeline_api.crm.resync import (
    ActivityFetcher,
    ActivityLister,
    ResyncClient,
    resync_all,
    resync_each,
)
from services.pipeline_api.events.event_log import EventLogWriter, EventsRefused, LogRow
from services.pipeline_api.resync import repository
from services.pipeline_api.sources.repository import get_source, store_refresh_token
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks.ingest import parked_row, to_row
from services.pipeline_api.webhooks.repository import park

_log = logging.getLogger("salesops.resync")

FLUSH_EVERY = 200
STORE_ATTEMPTS = 5
MAX_ATTEMPTS = 5


class ResyncWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        writer: EventLogWriter,
        http: httpx.AsyncClient,
        policy: OutboundPolicy,
        lease_seconds: float,
        max_future: timedelta,
        poll_seconds: float = 5.0,
        sources: Sequence[str] | None = None,
    ) -> None:
        """`sources`: take only the jobs of these sources (a worker beside another)."""
        self._sessions = sessions
        self._sources = sources
        self._lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex
        self._writer = writer
        self._http = http
        self._policy = policy
        self._max_future = max_future
        self._poll_seconds = poll_seconds
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            async with self._sessions() as session, session.begin():
                job = await repository.claim_resync_job(
                    session,
                    owner=self.owner,
                    lease_seconds=self._lease_seconds,
                    sources=self._sources,
                )
            if job is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self._poll_seconds)
                continue
            if job.attempts > MAX_ATTEMPTS:
                await self._finish(
                    job.id,
                    status="failed",
                    progress=0,
                    error=f"abandoned: its worker stopped during {MAX_ATTEMPTS} attempts",
                )
                continue
            await self.hold_and_run(job)

    async def hold_and_run(self, job: repository.ClaimedJob) -> None:
        """Run a job this worker has claimed, renewing its lease until the job ends; stop
        it if the lease is lost, and hand it back if this worker is stopped."""
        running = asyncio.create_task(self._run_job(job), name=f"resync-job-{job.id}")
        renewing = asyncio.create_task(self._renew(job.id), name=f"resync-lease-{job.id}")
        try:
            await asyncio.wait({running, renewing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _stopped(running, renewing)
            await self._release(job.id)
            raise
        await _stopped(running, renewing)

    async def _release(self, job_id: int) -> None:
        try:
            async with asyncio.timeout(5), self._sessions() as session, session.begin():
                await repository.release_resync_job(session, job_id=job_id, owner=self.owner)
        except Exception:  # the lease runs out instead, and the job is taken up again
            _log.warning("could not hand back re-sync job %s", job_id, exc_info=True)

    async def _renew(self, job_id: int) -> None:
        """Renew the job's lease well before it runs out, for as long as the job runs;
        return when the lease is lost."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                async with self._sessions() as session, session.begin():
                    held = await repository.renew_resync_lease(
                        session, job_id=job_id, owner=self.owner, lease_seconds=self._lease_seconds
                    )
            except Exception:  # a blip: the next renewal may still come in time
                _log.warning("could not renew the lease of re-sync job %s", job_id, exc_info=True)
                continue
            if not held:
                _log.warning("re-sync job %s was taken up by another worker; stopping", job_id)
                return

    async def _run_job(self, job: repository.ClaimedJob) -> None:
        async with self._sessions() as session:
            source = await get_source(session, source_id=job.source_id)
        progress = 0
        try:
            if source is None:
                raise RuntimeError(f"source {job.source_id!r} no longer exists")
            progress = await self._fetch(
                source,
                job_id=job.id,
                crm_ids=job.crm_ids,
                kind=cast(ActivityKind | None, job.activity_kind),
            )
            status, error = "done", None
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            _log.warning("re-sync job %s was taken up by another worker; stopping", job.id)
            return
        except Exception as exc:  # the job records why; the worker goes on with the next
            _log.warning("re-sync job %s failed", job.id, exc_info=True)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        await self._finish(job.id, status=status, progress=progress, error=error)

    async def _finish(self, job_id: int, *, status: str, progress: int, error: str | None) -> None:
        async with self._sessions() as session, session.begin():
            await repository.finish_resync_job(
                session,
                job_id=job_id,
                owner=self.owner,
                status=status,
                progress=progress,
                error=error,
            )

    async def _fetch(
        self, source: SourceIn, *, job_id: int, crm_ids: list[str], kind: ActivityKind | None
    ) -> int:
        async def store_rotated(token: str) -> None:
            # Salesforce has already retired the old token: losing this one means asking
            # the customer to authorise the app again, so a database blip is retried.
            for attempt in range(1, STORE_ATTEMPTS + 1):
                try:
                    async with self._sessions() as session, session.begin():
                        await store_refresh_token(session, source_id=source.id, token=token)
                    return
                except Exception:
                    if attempt == STORE_ATTEMPTS:
                        _log.error(
                            "source %s: Salesforce rotated its refresh token and the new one "
                            "could not be stored; authorise the connected app again",
                            source.id,
                        )
                        raise
                    await asyncio.sleep(0.5 * 2**attempt)

        # The transport checks every call against any CRM's hosts; this checks that the
        # URLs belong to this source's own CRM, as when the source was stored.
        self._policy.check_source(source)
        client = client_for(source, self._http, on_rotated=store_rotated)
        pending: list[DealChange | ActivityChange] = []
        seen = 0

        async def on_change(change: DealChange | ActivityChange) -> None:
            nonlocal seen
            pending.append(change)
            seen += 1
            if len(pending) >= FLUSH_EVERY:
                await self._flush(source, pending, job_id=job_id, seen=seen)

        if crm_ids:
            if kind is None:
                _, missing = await resync_each(client.fetch_deal, crm_ids, on_change)
            else:
                fetch = partial(_activity_client(client, source).fetch_activity, kind)
                _, missing = await resync_each(fetch, crm_ids, on_change)
            if len(crm_ids) > 1 and len(missing) == len(crm_ids):
                # Every record "gone" more likely means a wrong api_base_url than a purge;
                # recording deletions for all of them would be a silent data loss.
                raise RuntimeError(
                    f"the CRM answered 404 for all {len(crm_ids)} records; check api_base_url"
                )
            now = datetime.now(UTC)
            # The CRM no longer has them: record the deletions at the time we learned them.
            pending.extend(
                _gone(crm_id, kind, f"resync-gone:{job_id}:{crm_id}", now) for crm_id in missing
            )
        else:
            await resync_all(_lister(client, source, kind), on_change)
        await self._flush(source, pending, job_id=job_id, seen=seen)
        return seen

    async def _flush(
        self,
        source: SourceIn,
        changes: list[DealChange | ActivityChange],
        *,
        job_id: int,
        seen: int,
    ) -> None:
        rows: list[LogRow] = []
        stored: list[DealChange | ActivityChange] = []
        parked = []
        for change in changes:
            result = to_row(
                source, change, max_bytes=self._writer.max_event_bytes, max_future=self._max_future
            )
            if isinstance(result, Ignored):
                continue
            if isinstance(result, Parked):
                parked.append(
                    parked_row(
                        source,
                        request_id=None,
                        reason=result.reason,
                        replayable=result.replayable,
                        change=to_json(change),
                    )
                )
            else:
                rows.append(result)
                stored.append(change)
        changes.clear()
        # A record the log refuses is parked with the reason; the job goes on.
        results = await self._writer.append_each(rows) if rows else []
        for change, outcome in zip(stored, results, strict=True):
            if isinstance(outcome, EventsRefused):
                parked.append(
                    parked_row(
                        source,
                        request_id=None,
                        reason=outcome.reason,
                        replayable=False,
                        change=to_json(change),
                    )
                )
        async with self._sessions() as session, session.begin():
            await park(session, rows=parked)
            if not await repository.report_progress(
                session, job_id=job_id, progress=seen, owner=self.owner
            ):
                raise LeaseLost(job_id)


class LeaseLost(Exception):
    """Another worker holds the job now: this one must stop running it."""


async def _stopped(*tasks: asyncio.Task[None]) -> None:
    """Cancel the tasks and wait for them to end; raise what one of them raised."""
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, Exception):
            raise result


def _activity_client(client: ResyncClient, source: SourceIn) -> ActivityFetcher:
    if not isinstance(client, ActivityFetcher):
        raise RuntimeError(f"activity re-sync is not available for {source.kind}")
    return client


def _lister(
    client: ResyncClient, source: SourceIn, kind: ActivityKind | None
) -> AsyncIterator[DealChange | ActivityChange]:
    if kind is None:
        return client.iter_deals()
    if not isinstance(client, ActivityLister):
        raise RuntimeError(f"a re-sync of every activity is not available for {source.kind}")
    return client.iter_activities(kind)


def _gone(
    crm_id: str, kind: ActivityKind | None, event_key: str, now: datetime
) -> DealChange | ActivityChange:
    if kind is None:
        return DealChange(crm_id=crm_id, event_key=event_key, occurred_at=now, op="deleted")
    return ActivityChange(
        crm_id=crm_id, event_key=event_key, occurred_at=now, kind=kind, op="deleted"
    )
