"""SQL of re-sync jobs: queued, then claimed and run under a lease (worker.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api.models import ResyncJob


async def add_resync_job(
    session: AsyncSession,
    *,
    source_id: str,
    crm_ids: Sequence[str],
    reason: str,
    activity_kind: str | None = None,
) -> int:
    job = ResyncJob(
        source_id=source_id, crm_ids=list(crm_ids), reason=reason, activity_kind=activity_kind
    )
    session.add(job)
    await session.flush()
    return job.id


async def get_resync_job(session: AsyncSession, *, job_id: int) -> ResyncJob | None:
    return await session.get(ResyncJob, job_id)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    source_id: str
    crm_ids: list[str]
    activity_kind: str | None
    attempts: int


# A job is free when pending, or running under a lease its worker stopped renewing (the
# process died). Jobs running from before leases existed have none: they are taken up too.
_CLAIM_JOB = text(
    """
    UPDATE pipeline.resync_jobs
    SET status = 'running', lease_owner = :owner, attempts = attempts + 1,
        lease_expires_at = now() + make_interval(secs => CAST(:lease AS double precision)),
        updated_at = now()
    WHERE id = (
        SELECT id FROM pipeline.resync_jobs
        WHERE (status = 'pending'
               OR (status = 'running' AND coalesce(lease_expires_at, '-infinity') < now()))
          AND (CAST(:sources AS text[]) IS NULL OR source_id = ANY(CAST(:sources AS text[])))
        ORDER BY id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, source_id, crm_ids, activity_kind, attempts
    """
)
_RENEW_LEASE = text(
    """
    UPDATE pipeline.resync_jobs
    SET lease_expires_at = now() + make_interval(secs => CAST(:lease AS double precision))
    WHERE id = :id AND lease_owner = :owner AND status = 'running'
    """
)
# A worker stopping (a deploy) hands its job back as it found it: not an attempt.
_RELEASE_JOB = text(
    """
    UPDATE pipeline.resync_jobs
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
        attempts = greatest(attempts - 1, 0), updated_at = now()
    WHERE id = :id AND lease_owner = :owner AND status = 'running'
    """
)
_REPORT_PROGRESS = text(
    """
    UPDATE pipeline.resync_jobs SET progress = :p, updated_at = now()
    WHERE id = :id AND lease_owner = :owner AND status = 'running'
    """
)


async def claim_resync_job(
    session: AsyncSession,
    *,
    owner: str,
    lease_seconds: float,
    sources: Sequence[str] | None = None,
) -> ClaimedJob | None:
    """Take the oldest free job under a lease `owner` must renew within `lease_seconds`;
    with `sources`, only a job of those sources."""
    params = {
        "owner": owner,
        "lease": lease_seconds,
        "sources": list(sources) if sources is not None else None,
    }
    row = (await session.execute(_CLAIM_JOB, params)).mappings().one_or_none()
    return ClaimedJob(**row) if row is not None else None


async def renew_resync_lease(
    session: AsyncSession, *, job_id: int, owner: str, lease_seconds: float
) -> bool:
    """Extend the lease; False if another worker has taken the job meanwhile."""
    return await _held(
        session,
        statement=_RENEW_LEASE,
        params={"id": job_id, "owner": owner, "lease": lease_seconds},
    )


async def release_resync_job(session: AsyncSession, *, job_id: int, owner: str) -> None:
    """Hand a job back as pending, its attempt not counted: its worker is stopping."""
    await session.execute(_RELEASE_JOB, {"id": job_id, "owner": owner})


async def report_progress(session: AsyncSession, *, job_id: int, progress: int, owner: str) -> bool:
    """Record progress; False if `owner` no longer holds the job (it must stop)."""
    return await _held(
        session,
        statement=_REPORT_PROGRESS,
        params={"id": job_id, "owner": owner, "p": progress},
    )


async def _held(session: AsyncSession, *, statement: Any, params: dict[str, Any]) -> bool:
    """Run an owner-checked update; whether it found the job still held."""
    result = await session.execute(statement, params)
    return bool(getattr(result, "rowcount", 0))


async def finish_resync_job(
    session: AsyncSession,
    *,
    job_id: int,
    owner: str,
    status: str,
    progress: int,
    error: str | None,
) -> None:
    """Record the outcome, unless the lease was lost: the job's new owner reports it."""
    await session.execute(
        update(ResyncJob)
        .where(
            ResyncJob.id == job_id, ResyncJob.lease_owner == owner, ResyncJob.status == "running"
        )
        .values(status=status, progress=progress, error=error, updated_at=func.now())
    )
