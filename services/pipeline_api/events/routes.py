"""HTTP endpoints of the intake: canonical events in, stored events out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from services.pipeline_api.deps import (
    EventLog,
    EventsReader,
    EventsWriter,
    ReadSession,
    SettingsDep,
)
from services.pipeline_api.events import repository
from services.pipeline_api.events.event_log import EventsRefused, LogRow, too_large
from services.pipeline_api.events.intake import NDJSON, admit, read_events
from services.pipeline_api.events.schemas import IntakeResult, RejectedEvent, StoredEventOut
from services.pipeline_api.models import StoredEvent
from shared.edge import OWN_BODY_LIMIT, GuardedRoute
from shared.events import EventRejected
from shared.metrics import EVENTS_INTAKE
from shared.problems import Problem, problem_responses

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=GuardedRoute)

_EXAMPLE = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "app://billing",
    "type": "com.salesops.deal.created.v1",
    "time": "2026-11-02T10:00:00Z",
    "data": {
        "deal_id": "D-1",
        "name": "Acme renewal",
        "owner_id": "rep-7",
        "amount": "12000.00",
        "currency": "USD",
        "stage": "qualification",
    },
}


@router.post(
    "",
    status_code=202,
    response_model=IntakeResult,
    summary="Ingest canonical events",
    description=(
        "Takes one CloudEvent, a JSON array of them, or NDJSON (`application/x-ndjson`). "
        "Every valid event is durably stored before the answer; invalid ones are listed in "
        "`rejected` with their index and reason while the rest are still accepted: so is "
        "an event whose `time` lies more than `SALESOPS_EVENT_MAX_FUTURE_SECONDS` (default "
        "300) ahead, one in the `crm://` namespace of CRM webhooks, and one whose source "
        "the key is not bound to. "
        "Event types and their `data` schemas: see the `com.salesops.*` models in "
        "`shared/events.py` and the README."
    ),
    responses=problem_responses(400, 413, 415, 503),
    openapi_extra={
        OWN_BODY_LIMIT: "SALESOPS_INTAKE_MAX_BYTES",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": _EXAMPLE},
                NDJSON: {"schema": {"type": "string"}},
            },
        },
    },
)
async def post_events(
    request: Request,
    principal: EventsWriter,
    settings: SettingsDep,
    writer: EventLog,
) -> IntakeResult:
    items = await read_events(
        request, max_bytes=settings.intake_max_bytes, max_events=settings.intake_max_events
    )
    max_future = timedelta(seconds=settings.event_max_future_seconds)
    now = datetime.now(UTC)
    rows: list[tuple[int, LogRow]] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(items):
        try:
            row = LogRow.of(admit(item, principal, max_future=max_future, now=now))
            if row.size > writer.max_event_bytes:
                raise EventRejected(too_large(row, writer.max_event_bytes))
            rows.append((index, row))
        except EventRejected as exc:
            rejected.append(_rejected(index, item, exc.reason))
    flags: list[bool] = []
    if rows:
        try:
            outcomes = await writer.append_each([row for _index, row in rows])
        except Exception as exc:  # nothing was acknowledged; the client must retry
            raise Problem(
                503,
                "The event log is unavailable; nothing was stored. Retry later.",
                headers={"Retry-After": "1"},
            ) from exc
        for (index, _row), outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, EventsRefused):
                rejected.append(_rejected(index, items[index], outcome.reason))
            else:
                flags.append(outcome)
        rejected.sort(key=lambda r: r.index)
    accepted = sum(flags)
    EVENTS_INTAKE.labels("accepted").inc(accepted)
    EVENTS_INTAKE.labels("duplicate").inc(len(flags) - accepted)
    EVENTS_INTAKE.labels("rejected").inc(len(rejected))
    return IntakeResult(accepted=accepted, duplicates=len(flags) - accepted, rejected=rejected)


def _rejected(index: int, item: Any, reason: str) -> RejectedEvent:
    event_id = item.get("id") if isinstance(item, dict) else None
    return RejectedEvent(
        index=index, id=event_id if isinstance(event_id, str) else None, reason=reason
    )


@router.get(
    "/{source:path}/{event_id}",
    response_model=StoredEventOut,
    summary="One stored event and whether it was published",
    description="`source` is the event's CloudEvents source, URL-encoded if it has slashes.",
    responses=problem_responses(404),
)
async def get_event(
    source: str,
    event_id: str,
    principal: EventsReader,
    session: ReadSession,
) -> StoredEventOut:
    if not principal.covers(source):
        raise Problem(403, f"This API key may not read source {source!r}.")
    row = await repository.get_event(session, source=source, event_id=event_id)
    if row is None:
        raise Problem(404, f"No event with source {source!r} and id {event_id!r}.")
    return _out(row)


def _out(row: StoredEvent) -> StoredEventOut:
    envelope: dict[str, Any] = row.envelope
    return StoredEventOut(
        seq=row.seq,
        source=row.source,
        id=row.event_id,
        type=row.type,
        subject=row.subject,
        topic=row.topic,
        partition_key=row.partition_key,
        time=row.event_time,
        received_at=row.received_at,
        published=row.published_at is not None,
        published_at=row.published_at,
        event=envelope,
    )
