"""A re-sync job whose worker died is taken up again once its lease runs out.

Jobs are written as a worker that died mid-job would leave them: `running`, under a lease
nobody renews. A live worker must take them up and finish them, and a job that has
already killed its worker `MAX_ATTEMPTS` times is failed rather than tried forever. A job
that merely runs longer than its lease is renewed by its worker and never taken from it;
a worker that lost its lease stops, and a worker stopped on purpose hands its job back.

The tests run against a database of this module's own (migrated here): in the session's
database the stack's own re-sync worker, which takes any pending job, could take a test's job
first and fail it (the test's sources have no CRM to fetch from), so the test's worker would
wait for progress that never comes. The workers here still take only the jobs of their own
test's sources, so the tests stay apart from each other.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.pipeline_api.crm.changes import ActivityKind
from services.pipeline_api.crm.outbound import OutboundPolicy
from services.pipeline_api.events.event_log import EventLogWriter
from services.pipeline_api.models import ResyncJob
from services.pipeline_api.resync import repository
from services.pipeline_api.resync.worker import MAX_ATTEMPTS, ResyncWorker
from services.pipeline_api.sources.repository import upsert_source
from services.pipeline_api.sources.schemas import SourceIn
from shared.db import create_sessionmaker, driver_dsn
from shared.events import MAX_FUTURE
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


POLICY = OutboundPolicy(allow_loopback=True)
INSERT = text(
    "INSERT INTO pipeline.resync_jobs (source_id, crm_ids, reason, status, lease_owner, "
    "lease_expires_at, attempts) VALUES (:source, '[\"1\"]', 'test', 'running', :owner, "
    "now() + make_interval(secs => :lease), :attempts) RETURNING id"
)

W = TypeVar("W", bound=ResyncWorker)


def make(
    cls: type[W],
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    http: httpx.AsyncClient,
    *,
    lease: float,
    sources: list[str],
) -> W:
    """A worker that polls often and takes only the jobs of `sources`."""
    return cls(
        sessions=sessions,
        writer=writer,
        http=http,
        policy=POLICY,
        max_future=MAX_FUTURE,
        lease_seconds=lease,
        poll_seconds=0.1,
        sources=sources,
    )


async def test_a_job_left_running_by_a_dead_worker_is_taken_up(quiet_database_url: str) -> None:
    gone = f"gone-{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(quiet_database_url)
    sessions = create_sessionmaker(engine)
    dead = {"source": gone, "owner": "dead", "lease": -1.0}
    async with engine.begin() as conn:
        stranded = (await conn.execute(INSERT, {**dead, "attempts": 1})).scalar_one()
        poison = (await conn.execute(INSERT, {**dead, "attempts": MAX_ATTEMPTS})).scalar_one()
    writer = EventLogWriter(
        driver_dsn(quiet_database_url), on_commit=lambda: None, max_event_bytes=1024
    )
    async with httpx.AsyncClient() as http:
        worker = make(ResyncWorker, sessions, writer, http, lease=1.0, sources=[gone])
        running = asyncio.create_task(worker.run())
        try:

            async def finished() -> dict[int, tuple[str, str, int, str | None]] | None:
                async with sessions() as session:
                    jobs = {
                        job_id: await repository.get_resync_job(session, job_id=job_id)
                        for job_id in (stranded, poison)
                    }
                states = {
                    i: (j.status, j.error or "", j.attempts, j.lease_owner)
                    for i, j in jobs.items()
                    if j
                }
                return states if all(s[0] != "running" for s in states.values()) else None

            states = await eventually(finished, within=30)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    await engine.dispose()
    status, error, attempts, owner = states[stranded]
    assert (status, attempts, owner) == ("failed", 2, worker.owner)
    assert "no longer exists" in error, "the job was run again by the live worker"
    status, error, _, owner = states[poison]
    assert (status, owner) == ("failed", worker.owner)
    assert "abandoned" in error


class SlowWorker(ResyncWorker):
    """Its jobs take several lease periods, as a large re-sync over a slow CRM does."""

    async def _run_job(self, job: repository.ClaimedJob) -> None:
        await asyncio.sleep(LEASE * 4)
        await self._finish(job.id, status="done", progress=7, error=None)


LEASE = 0.6


async def test_a_live_worker_keeps_its_job_past_the_lease(quiet_database_url: str) -> None:
    engine = create_async_engine(quiet_database_url)
    sessions = create_sessionmaker(engine)
    writer = EventLogWriter(
        driver_dsn(quiet_database_url), on_commit=lambda: None, max_event_bytes=1024
    )
    async with httpx.AsyncClient() as http:
        source = f"gone-{uuid.uuid4().hex[:8]}"
        slow = make(SlowWorker, sessions, writer, http, lease=LEASE, sources=[source])
        rival = make(ResyncWorker, sessions, writer, http, lease=LEASE, sources=[source])
        params = {"source": source, "owner": slow.owner, "lease": LEASE}
        async with engine.begin() as conn:
            job_id = (await conn.execute(INSERT, {**params, "attempts": 1})).scalar_one()
        job = repository.ClaimedJob(job_id, str(params["source"]), ["1"], None, 1)
        polling = asyncio.create_task(rival.run())
        try:
            await slow.hold_and_run(job)
        finally:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
    async with sessions() as session:
        done = await repository.get_resync_job(session, job_id=job_id)
    await engine.dispose()
    assert done is not None
    assert (done.status, done.progress, done.attempts, done.error) == ("done", 7, 1, None)


class ProgressingWorker(ResyncWorker):
    """Reports progress every tenth of a lease until it is stopped."""

    async def _fetch(
        self, source: SourceIn, *, job_id: int, crm_ids: list[str], kind: ActivityKind | None
    ) -> int:
        seen = 0
        while True:
            seen += 1
            await self._flush(source, [], job_id=job_id, seen=seen)
            await asyncio.sleep(LEASE / 10)


async def progressing_job(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, int]:
    """A pending job of a (HubSpot) source of its own: the source, and the job's id."""
    source = f"lease-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await upsert_source(session, source=SourceIn(id=source, kind="hubspot", account_id="1"))
        job_id = await repository.add_resync_job(
            session, source_id=source, crm_ids=["1"], reason="test"
        )
    return source, job_id


async def test_a_worker_that_lost_its_lease_stops_and_a_stopped_one_hands_its_job_back(
    quiet_database_url: str,
) -> None:
    engine = create_async_engine(quiet_database_url)
    sessions = create_sessionmaker(engine)
    writer = EventLogWriter(
        driver_dsn(quiet_database_url), on_commit=lambda: None, max_event_bytes=1024
    )
    source, job_id = await progressing_job(sessions)
    async with httpx.AsyncClient() as http:
        worker = make(ProgressingWorker, sessions, writer, http, lease=LEASE, sources=[source])

        async def job() -> ResyncJob:
            async with sessions() as session:
                found = await repository.get_resync_job(session, job_id=job_id)
            assert found is not None
            return found

        async def progressed() -> ResyncJob | None:
            found = await job()
            return found if found.progress >= 3 else None

        running = asyncio.create_task(worker.run())
        try:
            await eventually(progressed, within=30)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        released = await job()
        assert (released.status, released.lease_owner, released.attempts) == ("pending", None, 0)

        async def held_again() -> ResyncJob | None:
            # Not `progressed`: the progress of the first run is still there, so it would
            # answer before this worker has claimed the job again.
            found = await job()
            return found if (found.status, found.lease_owner) == ("running", worker.owner) else None

        # Taken again, then taken from it (as a worker that renewed too late would find).
        running = asyncio.create_task(worker.run())
        try:
            await eventually(held_again, within=30)
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE pipeline.resync_jobs SET lease_owner = 'thief', progress = 0, "
                        "lease_expires_at = now() + interval '1 hour' WHERE id = :id"
                    ),
                    {"id": job_id},
                )
            await asyncio.sleep(LEASE * 2)
            stolen = await job()
            assert (stolen.status, stolen.lease_owner, stolen.progress) == ("running", "thief", 0)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    await engine.dispose()
