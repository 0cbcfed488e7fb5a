"""Where an event becomes deal state: one Kafka batch, one Postgres transaction.

The transaction stores the new changes (deduped by event identity), the deal versions they
produce, activities and their deletions, dead letters for what cannot be applied, and the
consumer offsets, so a crash anywhere leaves either all of a batch or none of it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.deals import repository
from services.forecast_worker.deals.projection import (
    Change,
    StageRules,
    Version,
    build_versions,
    extend_versions,
)
from shared.events import (
    ActivityDeleted,
    ActivityLogged,
    CanonicalEvent,
    DealCreated,
    DealDeleted,
    DealUpdated,
    EventRejected,
    validate_event,
)
from shared.ordering import OrderKey, is_newer

_log = logging.getLogger("salesops.projector")


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record the projector needs (decoupled from aiokafka)."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


class Unprocessable(Exception):
    pass


def decode(record: Record) -> CanonicalEvent:
    try:
        raw = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"value is not JSON: {exc}") from exc
    try:
        event = validate_event(raw, stored=True)
    except EventRejected as exc:
        raise Unprocessable(exc.reason) from exc
    if not isinstance(
        event.payload, DealCreated | DealUpdated | DealDeleted | ActivityLogged | ActivityDeleted
    ):
        raise Unprocessable(f"type: {event.envelope.type} is not a deal or activity event")
    return event


def to_change(event: CanonicalEvent) -> Change:
    env = event.envelope
    payload = event.payload
    assert isinstance(payload, DealCreated | DealUpdated | DealDeleted)
    if isinstance(payload, DealDeleted):
        merged = payload.merged_into
        fields: dict[str, Any] = {"properties": {"merged_into": merged}} if merged else {}
    else:
        fields = payload.changed_fields()
    return Change(
        key=OrderKey.of(time=env.time, sequence=env.sequence, source=env.source, event_id=env.id),
        deal_id=payload.deal_id,
        event_type=env.type,
        fields=fields,
    )


def to_activity_row(event: CanonicalEvent) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, ActivityLogged)
    return {
        "activity_id": payload.activity_id,
        "kind": payload.kind,
        "deal_id": payload.deal_id,
        "account_id": payload.account_id,
        "rep_id": payload.rep_id,
        "occurred_at": payload.occurred_at,
        "properties": orjson.dumps(payload.properties).decode(),
        "event_time": event.envelope.time,
        "event_source": event.envelope.source,
        "event_id": event.envelope.id,
    }


def to_activity_deletion(event: CanonicalEvent) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, ActivityDeleted)
    return {
        "activity_id": payload.activity_id,
        "deleted_at": payload.deleted_at or event.envelope.time,
        "event_time": event.envelope.time,
        "event_source": event.envelope.source,
        "event_id": event.envelope.id,
    }


def dead_letter(record: Record, reason: str, event: CanonicalEvent | None = None) -> dict[str, Any]:
    source = event.envelope.source if event else None
    event_id = event.envelope.id if event else None
    if event is None:
        try:
            raw = orjson.loads(record.value)
            if isinstance(raw, dict):
                source, event_id = str(raw.get("source")), str(raw.get("id"))
        except orjson.JSONDecodeError:
            pass
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "event_source": source,
        "event_id": event_id,
        "reason": reason,
        "payload": record.value.decode("utf-8", errors="replace"),
    }


async def apply_deal_changes(
    conn: AsyncConnection, changes: Sequence[Change], rules: StageRules
) -> int:
    """Fold new changes into each deal's history; returns how many were new."""
    fresh = await repository.insert_changes(conn, changes)
    by_deal: dict[str, list[Change]] = defaultdict(list)
    for change in fresh:
        by_deal[change.deal_id].append(change)
    if not by_deal:
        return 0
    current = await repository.load_current(conn, by_deal)
    to_write: list[Version] = []
    for deal_id, new in sorted(by_deal.items()):
        new.sort(key=lambda c: c.key)
        last = current.get(deal_id)
        if is_newer(new[0].key, last.cause if last else None):
            to_write.extend(extend_versions(last, new, rules))
        else:
            # A late change lands inside the history: rebuild this deal from all its changes.
            everything = await repository.load_changes(conn, deal_id)
            await repository.replace_history(conn, deal_id, build_versions(everything, rules))
    await repository.write_versions(conn, to_write)
    return len(fresh)


async def apply_records(
    conn: AsyncConnection, records: Sequence[Record], rules: StageRules
) -> BatchOutcome:
    outcome = BatchOutcome()
    changes: list[Change] = []
    activities: list[dict[str, Any]] = []
    deletions: list[dict[str, Any]] = []
    for record in records:
        try:
            event = decode(record)
        except Unprocessable as exc:
            outcome.dead_letters.append(dead_letter(record, str(exc)))
            continue
        if isinstance(event.payload, ActivityLogged):
            activities.append(to_activity_row(event))
        elif isinstance(event.payload, ActivityDeleted):
            deletions.append(to_activity_deletion(event))
        else:
            changes.append(to_change(event))
    fresh = await apply_deal_changes(conn, changes, rules)
    # Each statement keeps the newer of two events per activity, so which runs first
    # does not change the outcome.
    await repository.upsert_activities(conn, activities)
    await repository.delete_activities(conn, deletions)
    await repository.insert_dead_letters(conn, outcome.dead_letters)
    outcome.applied = fresh + len(activities) + len(deletions)
    outcome.duplicates = len(changes) - fresh
    return outcome


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out
