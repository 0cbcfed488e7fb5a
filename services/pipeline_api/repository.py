"""SQL for sources, the raw webhook archive, parked events and re-sync jobs.

(The event log's own SQL lives in event_log.py and relay.py, on the hot path.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Row, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api.models import (
    CRM_ACCOUNT_EVENTS,
    AccountAlias,
    ParkedEvent,
    ResyncJob,
    Source,
    WebhookRequest,
)
from services.pipeline_api.sources.schemas import SourceIn, open_values, secret_values
from services.pipeline_api.sources.secret_box import INFO_KEY, SecretBox, SecretBoxError

DATED_IN_FUTURE = "dated in the future"
"""How the reason of a change parked for its future time begins (ingest.py)."""


def _box(session: AsyncSession) -> SecretBox:
    """The session factory's secret box (see secret_box.py); none seals nothing."""
    box = session.info.get(INFO_KEY)
    return box if isinstance(box, SecretBox) else SecretBox()


def _opened(row: Source, unseal: Callable[[str], str]) -> dict[str, Any]:
    """`open_values` of the row, a secret that does not open naming its source."""
    try:
        return open_values(row.config, unseal)
    except SecretBoxError as exc:
        raise SecretBoxError(f"source {row.id!r}: {exc}") from exc


def _source(session: AsyncSession, row: Source) -> SourceIn:
    return SourceIn.model_validate(_opened(row, _box(session).open))


async def upsert_source(session: AsyncSession, source: SourceIn) -> bool:
    """Create or replace a source; True when it was new."""
    existed = await session.get(Source, source.id) is not None
    values = {
        "id": source.id,
        "kind": source.kind,
        "account_id": source.account_id,
        "config": secret_values(source, _box(session).seal),
    }
    await session.execute(
        insert(Source)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[Source.id], set_={**values, "updated_at": func.now()}
        )
    )
    return not existed


async def reseal_sources(session: AsyncSession) -> int:
    """Re-seal every stored secret under the first key (see secret_box.py); the rows are
    locked meanwhile, so a refresh token rotated concurrently is not lost. Returns how
    many sources were re-sealed."""
    box = _box(session)
    rows = (await session.execute(select(Source).with_for_update())).scalars().all()
    for row in rows:
        row.config = _opened(row, box.reseal)
    return len(rows)


async def sources_not_under_first_key(session: AsyncSession) -> list[str]:
    """The sources holding a secret that `reseal_sources` would still change: in clear,
    or sealed under a key other than the first. Until none, no old key may be dropped."""
    box = _box(session)
    rows = (await session.execute(select(Source).order_by(Source.id))).scalars().all()
    return [row.id for row in rows if not all(_secrets_judged(row, box.under_first_key))]


def _secrets_judged(row: Source, judge: Callable[[str], bool]) -> list[bool]:
    judged: list[bool] = []

    def record(value: str) -> str:
        judged.append(judge(value))
        return value

    open_values(row.config, record)
    return judged


async def get_source_for_update(session: AsyncSession, source_id: str) -> SourceIn | None:
    """The source, locked until the transaction ends: a PUT keeps stored secrets, and a
    refresh token rotated meanwhile must not be overwritten by the one it read."""
    row = await session.get(Source, source_id, with_for_update=True, populate_existing=True)
    return _source(session, row) if row is not None else None


async def get_source(session: AsyncSession, source_id: str) -> SourceIn | None:
    row = await session.get(Source, source_id)
    return _source(session, row) if row else None


async def list_sources(session: AsyncSession) -> list[SourceIn]:
    rows = (await session.execute(select(Source).order_by(Source.id))).scalars().all()
    return [_source(session, r) for r in rows]


async def delete_source(session: AsyncSession, source_id: str) -> bool:
    result = await session.execute(delete(Source).where(Source.id == source_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sources_of_kind(session: AsyncSession, kind: str) -> list[SourceIn]:
    rows = await session.execute(select(Source).where(Source.kind == kind))
    return [_source(session, r) for r in rows.scalars().all()]


async def store_request(
    session: AsyncSession,
    *,
    source_id: str | None,
    kind: str,
    headers: dict[str, str],
    body: bytes,
    ignored: Sequence[str] = (),
) -> int:
    row = WebhookRequest(
        source_id=source_id, kind=kind, headers=headers, body=body, ignored=list(ignored) or None
    )
    session.add(row)
    await session.flush()
    return row.id


def _requests_query(
    query: Any, *, source_id: str | None, kind: str | None, after: int | None, limit: int
) -> Any:
    query = query.order_by(WebhookRequest.id).limit(limit)
    if source_id is not None:
        query = query.where(WebhookRequest.source_id == source_id)
    if kind is not None:
        query = query.where(WebhookRequest.kind == kind)
    if after is not None:
        query = query.where(WebhookRequest.id > after)
    return query


async def list_requests(
    session: AsyncSession, *, source_id: str | None, kind: str | None, after: int | None, limit: int
) -> Sequence[Row[Any]]:
    """Archived webhook requests in arrival order, without their bodies (only sizes)."""
    columns = select(
        WebhookRequest.id,
        WebhookRequest.source_id,
        WebhookRequest.kind,
        WebhookRequest.received_at,
        WebhookRequest.headers,
        WebhookRequest.ignored,
        func.octet_length(WebhookRequest.body).label("size"),
    )
    query = _requests_query(columns, source_id=source_id, kind=kind, after=after, limit=limit)
    return (await session.execute(query)).all()


async def request_ids_to_replay(
    session: AsyncSession,
    *,
    ids: Sequence[int] | None,
    source_id: str | None,
    after: int | None,
    limit: int,
) -> list[int]:
    """Archived request ids, those named or a source's in arrival order; bodies are read
    one at a time afterwards, so a large replay never holds them all in memory."""
    query = _requests_query(
        select(WebhookRequest.id), source_id=source_id, kind=None, after=after, limit=limit
    )
    if ids is not None:
        query = query.where(WebhookRequest.id.in_(ids))
    return list((await session.execute(query)).scalars())


async def get_request(session: AsyncSession, request_id: int) -> WebhookRequest | None:
    return await session.get(WebhookRequest, request_id)


async def store_refresh_token(session: AsyncSession, source_id: str, token: str) -> None:
    """Keep a rotated Salesforce refresh token: the one it replaced no longer works."""
    await session.execute(
        text(
            "UPDATE pipeline.sources SET updated_at = now(), config = jsonb_set("
            "config, '{oauth,refresh_token}', to_jsonb(CAST(:token AS text))) "
            "WHERE id = :id AND jsonb_typeof(config->'oauth') = 'object'"
        ),
        {"id": source_id, "token": _box(session).seal(token)},
    )


async def deals_with_account(
    session: AsyncSession, *, event_source: str, account_id: str, deal_types: Sequence[str]
) -> list[str]:
    """The deals of one event source whose account is now `account_id`, by the log's
    account-setting events ordered as the projection orders them (time, sequence, id).

    The pipeline's own log answers this, so a merge of accounts needs neither the
    projection's tables nor a full re-sync from the CRM. Both steps use an index
    (`ix_events_account`, then `ix_events_account_subject`): the deals that ever had the
    account, then each one's latest account.
    """
    rows = await session.execute(
        text(
            "SELECT c.deal_id FROM ("
            " SELECT DISTINCT subject AS deal_id FROM pipeline.events"
            f" WHERE source = :source AND {CRM_ACCOUNT_EVENTS}"
            "  AND (envelope->'data'->>'account_id') = :account AND type = ANY(:types)"
            ") c WHERE ("
            " SELECT e.envelope->'data'->>'account_id' FROM pipeline.events e"
            f" WHERE e.source = :source AND e.subject = c.deal_id AND {CRM_ACCOUNT_EVENTS}"
            "  AND e.type = ANY(:types)"
            " ORDER BY e.event_time DESC,"
            "  COALESCE((e.envelope->>'sequence')::numeric, -1) DESC, e.event_id DESC"
            " LIMIT 1"
            ") = :account ORDER BY c.deal_id"
        ),
        {"source": event_source, "types": list(deal_types), "account": account_id},
    )
    return list(rows.scalars())


async def lock_account_aliases(session: AsyncSession, source_id: str) -> None:
    """Serialise the merges of one source until the transaction ends, so two merges
    committed at once cannot together make a cycle."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"pipeline.account_aliases:{source_id}"},
    )


async def account_aliases(
    session: AsyncSession, source_id: str, account_ids: Iterable[str]
) -> list[AccountAlias]:
    """The merges of a source that start at one of `account_ids`, and those their
    survivors were merged by in turn (chains are followed; one indexed look-up a link)."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    rows = await session.execute(
        text(
            "WITH RECURSIVE chain AS ("
            " SELECT a.*, 1 AS depth FROM pipeline.account_aliases a"
            " WHERE a.source_id = :source AND a.merged_id = ANY(:ids)"
            " UNION"
            " SELECT a.*, c.depth + 1 FROM chain c JOIN pipeline.account_aliases a"
            "  ON a.source_id = :source AND a.merged_id = c.survivor_id"
            " WHERE c.depth < :max_depth"
            ") SELECT DISTINCT source_id, merged_id, survivor_id, merged_at, event_key"
            " FROM chain"
        ),
        {"source": source_id, "ids": ids, "max_depth": MAX_MERGE_CHAIN},
    )
    return [AccountAlias(**row) for row in rows.mappings()]


async def source_account_aliases(session: AsyncSession, source_id: str) -> list[AccountAlias]:
    """Every merge of a source (the table is small: one row per account merged away)."""
    rows = await session.scalars(select(AccountAlias).where(AccountAlias.source_id == source_id))
    return list(rows)


async def account_aliases_recorded_since(
    session: AsyncSession, within: timedelta | None
) -> list[AccountAlias]:
    """The merges of every source stored (or replaced) in the last `within`, by the
    database's clock (`ix_account_aliases_recorded_at`); all of them when `within` is None."""
    query = select(AccountAlias).order_by(AccountAlias.source_id, AccountAlias.merged_id)
    if within is not None:
        query = query.where(AccountAlias.recorded_at > func.now() - within)
    return list(await session.scalars(query))


MAX_MERGE_CHAIN = 100
"""How many merges a chain of accounts is followed through (a bound, not a CRM limit)."""


async def add_account_alias(session: AsyncSession, alias: AccountAlias) -> None:
    """Record a merge; a retry of it changes nothing, and of two merges of the same
    account the later one holds (the account was restored and merged again)."""
    values = {
        c.key: getattr(alias, c.key)
        for c in AccountAlias.__table__.columns
        if c.key != "recorded_at"
    }
    excluded = insert(AccountAlias).excluded
    await session.execute(
        insert(AccountAlias)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[AccountAlias.source_id, AccountAlias.merged_id],
            set_={
                "survivor_id": excluded.survivor_id,
                "merged_at": excluded.merged_at,
                "event_key": excluded.event_key,
                "recorded_at": func.now(),
            },
            where=excluded.merged_at > AccountAlias.merged_at,
        )
    )


async def park(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, skip_known: bool = False
) -> None:
    """Park changes; with `skip_known`, not those their request already parked (a replay
    of an archived request reads the same changes again)."""
    if skip_known and rows:
        request_ids = {r["request_id"] for r in rows}
        known = {
            _park_key(change)
            for change in (
                await session.execute(
                    select(ParkedEvent.change).where(ParkedEvent.request_id.in_(request_ids))
                )
            ).scalars()
        }
        rows = [r for r in rows if _park_key(r["change"]) not in known]
    if rows:
        await session.execute(insert(ParkedEvent), list(rows))


def _park_key(change: Any) -> str:
    """The change itself, not the reason: a reason's wording may change between versions."""
    return json.dumps(change, sort_keys=True, default=str)


async def list_parked(
    session: AsyncSession,
    *,
    source_id: str | None,
    after: int | None,
    limit: int,
    include_replayed: bool,
) -> Sequence[ParkedEvent]:
    query = select(ParkedEvent).order_by(ParkedEvent.id).limit(limit)
    if source_id is not None:
        query = query.where(ParkedEvent.source_id == source_id)
    if after is not None:
        query = query.where(ParkedEvent.id > after)
    if not include_replayed:
        query = query.where(ParkedEvent.replayed_at.is_(None))
    return (await session.execute(query)).scalars().all()


async def claim_replayable(
    session: AsyncSession,
    *,
    source_id: str | None,
    ids: Iterable[int] | None,
    limit: int,
    due_by: datetime | None = None,
) -> Sequence[ParkedEvent]:
    """Open replayable parked changes, locked. With `due_by`, only those parked as dated
    in the future whose time is now at most `due_by`: the earlier of the change's
    `occurred_at` and `changed_at`, since its event's time is one of them."""
    query = (
        select(ParkedEvent)
        .where(ParkedEvent.replayed_at.is_(None), ParkedEvent.replayable.is_(True))
        .order_by(ParkedEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if source_id is not None:
        query = query.where(ParkedEvent.source_id == source_id)
    if ids is not None:
        query = query.where(ParkedEvent.id.in_(list(ids)))
    if due_by is not None:
        earliest = func.least(
            ParkedEvent.change["occurred_at"].astext.cast(DateTime(timezone=True)),
            ParkedEvent.change["changed_at"].astext.cast(DateTime(timezone=True)),
        )
        query = query.where(ParkedEvent.reason.startswith(DATED_IN_FUTURE), earliest <= due_by)
    return (await session.execute(query)).scalars().all()


async def mark_replayed(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(ParkedEvent).where(ParkedEvent.id.in_(ids)).values(replayed_at=func.now())
        )


async def set_park_reason(session: AsyncSession, parked_id: int, reason: str) -> None:
    await session.execute(
        update(ParkedEvent).where(ParkedEvent.id == parked_id).values(reason=reason)
    )


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


async def get_resync_job(session: AsyncSession, job_id: int) -> ResyncJob | None:
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
    session: AsyncSession, job_id: int, *, owner: str, lease_seconds: float
) -> bool:
    """Extend the lease; False if another worker has taken the job meanwhile."""
    return await _held(
        session, _RENEW_LEASE, {"id": job_id, "owner": owner, "lease": lease_seconds}
    )


async def release_resync_job(session: AsyncSession, job_id: int, *, owner: str) -> None:
    """Hand a job back as pending, its attempt not counted: its worker is stopping."""
    await session.execute(_RELEASE_JOB, {"id": job_id, "owner": owner})


async def report_progress(session: AsyncSession, job_id: int, progress: int, *, owner: str) -> bool:
    """Record progress; False if `owner` no longer holds the job (it must stop)."""
    return await _held(session, _REPORT_PROGRESS, {"id": job_id, "owner": owner, "p": progress})


async def _held(session: AsyncSession, statement: Any, params: dict[str, Any]) -> bool:
    """Run an owner-checked update; whether it found the job still held."""
    result = await session.execute(statement, params)
    return bool(getattr(result, "rowcount", 0))


async def finish_resync_job(
    session: AsyncSession,
    job_id: int,
    *,
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


def headers_for_audit(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers worth keeping, minus credentials."""
    return {k: v for k, v in headers if k.lower() not in ("authorization", "cookie")}
