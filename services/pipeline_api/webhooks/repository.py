"""SQL of the raw webhook request archive and of parked changes (the intake DLQ)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api.models import ParkedEvent, WebhookRequest

DATED_IN_FUTURE = "dated in the future"
"""How the reason of a change parked for its future time begins (ingest.py)."""


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


async def get_request(session: AsyncSession, *, request_id: int) -> WebhookRequest | None:
    return await session.get(WebhookRequest, request_id)


async def park(
    session: AsyncSession, *, rows: Sequence[dict[str, Any]], skip_known: bool = False
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


async def mark_replayed(session: AsyncSession, *, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(ParkedEvent).where(ParkedEvent.id.in_(ids)).values(replayed_at=func.now())
        )


async def set_park_reason(session: AsyncSession, *, parked_id: int, reason: str) -> None:
    await session.execute(
        update(ParkedEvent).where(ParkedEvent.id == parked_id).values(reason=reason)
    )


def headers_for_audit(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers worth keeping, minus credentials."""
    return {k: v for k, v in headers if k.lower() not in ("authorization", "cookie")}
