"""Where a webhook's parsed changes become stored events, parked changes or re-sync jobs.

Everything a delivery produced is durable before the CRM hears 2xx: the raw request (with
the reasons for what it ignored), parked changes and re-sync jobs in one transaction, then
the mapped events through the group-committed event log. Parked changes that only lacked a
mapping are replayed through the same mapping later, so the stored event is the one the
first delivery would have made. What changes nothing we keep is counted as ignored and
noted on the archived request, never parked: the DLQ holds only what an operator can act on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.accounts import merges as account_merges
from services.pipeline_api.accounts.repository import account_aliases
from services.pipeline_api.crm import registry
from services.pipeline_api.crm.changes import (
    AccountMerged,
    ActivityChange,
    ActivityKind,
    CrmChange,
    DealChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    from_json,
    to_json,
)
from services.pipeline_api.crm.mapping import (
    Parked,
    map_activity,
    map_deal,
)
from services.pipeline_api.events.event_log import (
    Archive,
    EventLogWriter,
    EventsRefused,
    LogRow,
    too_large,
)
from services.pipeline_api.models import ParkedEvent
from services.pipeline_api.resync.repository import add_resync_job
from services.pipeline_api.sources.repository import get_source
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks import repository
from shared.events import EventInFuture, EventRejected, validate_event
from shared.metrics import WEBHOOK_IGNORED

_log = logging.getLogger("salesops.ingest")


@dataclass
class IngestOutcome:
    accepted: int = 0
    duplicates: int = 0
    parked: int = 0
    unsupported: int = 0
    ignored: int = 0
    resync_jobs: list[int] = field(default_factory=list)


def to_row(
    source: SourceIn,
    change: DealChange | ActivityChange,
    *,
    max_bytes: int,
    max_future: timedelta,
    aliases: Mapping[str, str] | None = None,
) -> LogRow | Parked | Ignored:
    """Map and validate one change: a row for the event log, why it must wait, or why
    there is nothing to store. An event too large for the broker is parked: it could
    never be published. `max_future` is `SALESOPS_EVENT_MAX_FUTURE_SECONDS`; `aliases`
    the survivors of merged accounts (accounts/merges.py)."""
    mapped = (
        map_deal(source, change=change, aliases=aliases)
        if isinstance(change, DealChange)
        else map_activity(source, change=change)
    )
    if isinstance(mapped, Parked | Ignored):
        return mapped
    try:
        row = LogRow.of(validate_event(mapped, max_future=max_future))
    except EventInFuture as exc:
        # A CRM clock running ahead: stored now, the change would outrank every later one
        # of its deal until its time came. It waits instead; `replay_due` stores it once
        # its time has come (as does a mapping update, or POST /v1/dlq/replay).
        return Parked(f"{repository.DATED_IN_FUTURE}: {exc.reason}", replayable=True)
    except EventRejected as exc:
        return Parked(f"not a valid canonical event: {exc.reason}", replayable=False)
    if row.size > max_bytes:
        return Parked(too_large(row, max_bytes), replayable=False)
    return row


def coalesced(requests: Sequence[ResyncRequest]) -> list[ResyncRequest]:
    """One request per kind of record: a message of 100 notifications to re-read makes one
    job of 100 records, not 100 jobs (a request for every record takes in the others)."""
    by_kind: dict[ActivityKind | None, list[ResyncRequest]] = {}
    for request in requests:
        by_kind.setdefault(request.activity_kind, []).append(request)
    out: list[ResyncRequest] = []
    for kind, group in by_kind.items():
        every = next((r for r in group if not r.crm_ids), None)
        if len(group) == 1 or every is not None:
            out.append(every or group[0])
            continue
        ids = tuple(dict.fromkeys(i for r in group for i in r.crm_ids))
        reason = f"{len(group)} changes to re-read; the first: {group[0].reason}"
        out.append(ResyncRequest(reason, ids, activity_kind=kind))
    return out


async def _add_resync_jobs(
    session: AsyncSession, *, source_id: str, requests: Sequence[ResyncRequest]
) -> list[int]:
    return [
        await add_resync_job(
            session,
            source_id=source_id,
            crm_ids=request.crm_ids,
            reason=request.reason,
            activity_kind=request.activity_kind,
        )
        for request in coalesced(requests)
    ]


UNSYNCED = "resync"
"""The `type` of a parked re-sync request (`_unsynced`)."""


def _unsynced(request: ResyncRequest, missing: list[str]) -> tuple[str, bool, dict[str, Any]]:
    """A re-sync request the source cannot run, parked with what the payload said, so the
    values are in the DLQ (not only in the archive); replayed into a job once the source
    can re-sync (a source PUT replays its parked changes)."""
    reason = (
        f"{request.reason}; the source cannot re-sync ({' and '.join(missing)} not set): "
        "set them to have the record re-read"
    )
    change = {
        "type": UNSYNCED,
        "reason": request.reason,
        "crm_ids": list(request.crm_ids),
        "activity_kind": request.activity_kind,
        "values": request.values,
    }
    return reason, True, change


def parked_row(
    source: SourceIn,
    *,
    request_id: int | None,
    reason: str,
    replayable: bool,
    change: dict[str, Any],
) -> dict[str, Any]:
    return {
        "source_id": source.id,
        "request_id": request_id,
        "reason": reason,
        "replayable": replayable,
        "change": change,
    }


async def ingest(
    *,
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    source: SourceIn,
    kind: str,
    headers: dict[str, str],
    body: bytes,
    changes: Sequence[CrmChange],
    max_future: timedelta,
    alias_cache: account_merges.AliasCache,
    replay_of: int | None = None,
) -> IngestOutcome:
    """Store what one delivery produced. `replay_of` names an archived request being read
    again: it is not archived twice, and changes it parked before are not parked again.
    `alias_cache`: the process's merged accounts (accounts/merges.py)."""
    outcome = IngestOutcome()
    rows: list[LogRow] = []
    placed: list[DealChange | ActivityChange] = []  # the change of each row
    parked: list[tuple[str, bool, dict[str, Any]]] = []
    resyncs: list[ResyncRequest] = []
    ignored: list[str] = []
    merges: list[AccountMerged] = []
    aliases = await alias_cache.survivors_for(source=source, changes=changes)

    def row_of(change: DealChange | ActivityChange) -> LogRow | Parked | Ignored:
        return to_row(
            source, change, max_bytes=writer.max_event_bytes, max_future=max_future, aliases=aliases
        )

    def place(change: DealChange | ActivityChange) -> None:
        result = row_of(change)
        if isinstance(result, Parked):
            parked.append((result.reason, result.replayable, to_json(change)))
        elif isinstance(result, Ignored):
            ignored.append(result.reason)
        else:
            rows.append(result)
            placed.append(change)

    def unsupported(change: Unsupported) -> None:
        outcome.unsupported += 1
        item = json.loads(json.dumps(change.item, default=str))  # Decimals -> exact text
        parked.append((change.reason, False, {"type": "unsupported", "item": item}))

    cannot_resync = registry.resync_missing(source)
    for change in changes:
        if isinstance(change, DealChange | ActivityChange):
            place(change)
        elif isinstance(change, ResyncRequest) and change.values is not None and cannot_resync:
            parked.append(_unsynced(change, cannot_resync))
        elif isinstance(change, ResyncRequest):
            resyncs.append(change)
        elif isinstance(change, Unsupported):
            unsupported(change)
        elif isinstance(change, Ignored):
            ignored.append(change.reason)
        else:
            merges.append(change)
    if not parked and not resyncs and not ignored and not merges:
        # The common case: one group-committed statement archives the request and stores
        # its events.
        archive = (
            Archive(source_id=source.id, kind=kind, headers=headers, body=body)
            if replay_of is None
            else None
        )
        try:
            flags = await writer.append(rows, archive=archive)
        except EventsRefused:
            pass  # rare: archive the request alone, then store its changes one by one
        else:
            outcome.accepted = sum(flags)
            outcome.duplicates = len(flags) - outcome.accepted
            return outcome
    async with sessions() as session, session.begin():
        recorded, refused = await account_merges.record(session, source=source, merges=merges)
        for cycle in refused:
            unsupported(cycle)
        request_id = replay_of
        if request_id is None:
            request_id = await repository.store_request(
                session, source_id=source.id, kind=kind, headers=headers, body=body, ignored=ignored
            )
        await repository.park(
            session,
            rows=[
                parked_row(source, request_id=request_id, reason=r, replayable=ok, change=c)
                for r, ok, c in parked
            ],
            skip_known=replay_of is not None,
        )
        outcome.resync_jobs = await _add_resync_jobs(session, source_id=source.id, requests=resyncs)
    if recorded:
        alias_cache.invalidate(source.id)
    outcome.parked = len(parked) - outcome.unsupported
    outcome.ignored = len(ignored)
    # The merges' aliases are committed: only now may the log be read for their deals.
    late: list[dict[str, Any]] = []
    merged = {m.merged_id for m in recorded}
    for change in await account_merges.repointed(sessions, source=source, merged=merged):
        result = row_of(change)
        if isinstance(result, LogRow):
            rows.append(result)
            placed.append(change)
        elif isinstance(result, Parked):  # a merge dated in the future, say
            late.append(
                parked_row(
                    source,
                    request_id=request_id,
                    reason=result.reason,
                    replayable=True,
                    change=to_json(change),
                )
            )
    if late:
        async with sessions() as session, session.begin():
            await repository.park(session, rows=late)
        outcome.parked += len(late)
    if rows:
        await _store_each(
            sessions,
            writer=writer,
            source=source,
            request_id=request_id,
            rows=rows,
            placed=placed,
            outcome=outcome,
        )
    if ignored and replay_of is None:
        # Counted once all is durable, once per delivery: a failed append answers 503 and
        # the CRM's retry is the delivery that counts.
        WEBHOOK_IGNORED.labels(kind=kind).inc(len(ignored))
    return outcome


async def _store_each(
    sessions: async_sessionmaker[AsyncSession],
    *,
    writer: EventLogWriter,
    source: SourceIn,
    request_id: int | None,
    rows: list[LogRow],
    placed: list[DealChange | ActivityChange],
    outcome: IngestOutcome,
) -> None:
    """Store the rows; a change the database refuses is parked with its reason and the
    others are stored, so one bad change never costs a delivery its other changes (a CRM
    retries a refused delivery whole, and Pipedrive disables a failing webhook)."""
    refused: list[dict[str, Any]] = []
    results = await writer.append_each(rows)
    for change, result in zip(placed, results, strict=True):
        if isinstance(result, EventsRefused):
            refused.append(
                parked_row(
                    source,
                    request_id=request_id,
                    reason=result.reason,
                    replayable=False,
                    change=to_json(change),
                )
            )
        else:
            outcome.accepted += result
            outcome.duplicates += not result
    if refused:
        async with sessions() as session, session.begin():
            await repository.park(session, rows=refused, skip_known=True)
        outcome.parked += len(refused)


@dataclass
class ReplayOutcome:
    replayed: int = 0
    """Stored in the log (or queued as a re-sync job)."""
    still_parked: int = 0
    duplicates: int = 0
    settled: int = 0
    """Left the DLQ with nothing to store: they change nothing we keep today."""


async def replay_parked(
    *,
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    max_future: timedelta,
    source_id: str | None = None,
    ids: Sequence[int] | None = None,
    due_only: bool = False,
    batch: int = 500,
) -> ReplayOutcome:
    """Map parked changes again with today's mappings; store those that now map.
    `due_only`: just the changes parked for their future time that has now come."""
    outcome = ReplayOutcome()
    due_by = datetime.now(UTC) + max_future if due_only else None
    async with sessions() as session, session.begin():
        parked = await repository.claim_replayable(
            session, source_id=source_id, ids=ids, due_by=due_by, limit=batch
        )
        sources: dict[str, SourceIn | None] = {}
        mapped: list[int] = []
        settled: list[int] = []  # nothing to store, nothing for an operator to do
        rows: list[LogRow] = []
        aliases = await _aliases_of(session, parked=parked)
        resyncs: dict[str, list[ResyncRequest]] = {}
        mapped_to_jobs: list[int] = []
        for item in parked:
            if item.source_id not in sources:
                sources[item.source_id] = await get_source(session, source_id=item.source_id)
            source = sources[item.source_id]
            if source is None or (
                item.change.get("type") == UNSYNCED and registry.resync_missing(source)
            ):
                outcome.still_parked += 1
                continue
            if item.change.get("type") == UNSYNCED:
                resyncs.setdefault(item.source_id, []).append(_resync_of(item.change))
                mapped_to_jobs.append(item.id)
                continue
            result = to_row(
                source,
                from_json(item.change),
                max_bytes=writer.max_event_bytes,
                max_future=max_future,
                aliases=aliases.get(item.source_id),
            )
            if isinstance(result, Ignored):
                settled.append(item.id)
                continue
            if isinstance(result, Parked):
                outcome.still_parked += 1
                if result.reason != item.reason:
                    await repository.set_park_reason(
                        session, parked_id=item.id, reason=result.reason
                    )
                continue
            rows.append(result)
            mapped.append(item.id)
        # Durable in the log before the parked rows are marked: a crash in between replays
        # them again, and the log's (source, id) key makes that a duplicate, not a loss.
        done = settled + mapped_to_jobs
        stored = await writer.append_each(rows) if rows else []
        for item_id, new in zip(mapped, stored, strict=True):
            if isinstance(new, EventsRefused):  # stays parked, saying why
                outcome.still_parked += 1
                await repository.set_park_reason(session, parked_id=item_id, reason=new.reason)
            else:
                done.append(item_id)
                outcome.duplicates += not new
        for resync_source, requests in resyncs.items():
            await _add_resync_jobs(session, source_id=resync_source, requests=requests)
        await repository.mark_replayed(session, ids=done)
    outcome.settled = len(settled)
    outcome.replayed = len(done) - outcome.settled
    if done:
        _log.info("replayed %d parked changes, settled %d", outcome.replayed, outcome.settled)
    return outcome


def _resync_of(change: dict[str, Any]) -> ResyncRequest:
    return ResyncRequest(
        change["reason"], tuple(change["crm_ids"]), activity_kind=change["activity_kind"]
    )


async def _aliases_of(
    session: AsyncSession, *, parked: Sequence[ParkedEvent]
) -> dict[str, dict[str, str]]:
    """The survivors of the merged accounts parked deal changes name, by source: a change
    parked before its account was merged is stored on the survivor."""
    named: dict[str, set[str]] = {}
    for item in parked:
        account = item.change.get("fields", {}).get("account_id") if item.change else None
        if item.change.get("type") == "deal" and account not in (None, ""):
            named.setdefault(item.source_id, set()).add(str(account))
    return {
        source_id: account_merges.survivors(
            await account_aliases(session, source_id=source_id, account_ids=accounts)
        )
        for source_id, accounts in named.items()
    }


async def replay_due(
    *,
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    max_future: timedelta,
    every: float = 60.0,
) -> None:
    """Store, every `every` seconds, the changes parked as dated in the future whose time
    has come: else a CRM clock running ahead would park its changes until an operator
    noticed. Cheap: the query reads only open parked rows that are due."""
    while True:
        await asyncio.sleep(every)
        while True:
            outcome = await replay_parked(
                sessions=sessions, writer=writer, max_future=max_future, due_only=True
            )
            if not outcome.replayed and not outcome.settled:
                break
