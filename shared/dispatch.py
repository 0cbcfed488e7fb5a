"""What a consumer does with a batch before any I/O: decode each record, set aside what
cannot be applied as a dead letter, and group the rest by the handler its type names.

A service declares its `Dispatch`, a table from canonical event type to `Handler`; one
handler may take several types (a deal's created, updated and deleted events fold into one
history). The consumer base calls each handler once per batch, with that handler's events in
the order they were read, so a handler can dedupe and fold a batch in one pass. A handler
that finds some of its events inapplicable in its own terms (a stage its configuration does
not know) refuses just those (`Applied.refused`): the base dead-letters each with its
record, and the rest of the batch is applied as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import CanonicalEvent, EventRejected, validate_event


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record a consumer needs (decoupled from aiokafka)."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class DeadLetter:
    """A record that cannot be applied, and why: stored in the service's `dead_letters`
    table with the batch's offsets, then announced on the topic's DLQ."""

    topic: str
    partition: int
    offset: int
    event_source: str | None
    event_id: str | None
    reason: str
    payload: str

    @classmethod
    def of(cls, record: Record, reason: str) -> DeadLetter:
        """The event's identity is taken from the raw JSON when it has one, so that an event
        refused by validation can still be found by its id."""
        source: str | None = None
        event_id: str | None = None
        try:
            raw = orjson.loads(record.value)
            if isinstance(raw, dict):
                source, event_id = str(raw.get("source")), str(raw.get("id"))
        except orjson.JSONDecodeError:
            pass
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_source=source,
            event_id=event_id,
            reason=reason,
            payload=record.value.decode("utf-8", errors="replace"),
        )


@dataclass(frozen=True)
class Refused:
    """One event a handler would not apply, by its position in the events it was given.

    The reason is typed: `code` names the kind of refusal, so that a later fix can find the
    dead letters it mends (`shared.consumer.replay_open`), and `detail` says it to a person.
    The dead letter stores them as one text, "code: detail"."""

    index: int
    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class Applied:
    """What a handler made of its events: how many changed state, how many were seen before,
    and which it refused (left unapplied, to be dead-lettered)."""

    new: int
    duplicates: int = 0
    refused: tuple[Refused, ...] = ()


class Handler(Protocol):
    async def __call__(
        self, conn: AsyncConnection, events: Sequence[CanonicalEvent]
    ) -> Applied: ...


Dispatch = Mapping[str, Handler]


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.dead_letters.extend(other.dead_letters)


class Unprocessable(Exception):
    """The record's own fault, found before any I/O: it is dead-lettered, never retried."""


ANY_HANDLED = "an event this consumer handles"
"""What a consumer handles, when its spec does not say (`ConsumerSpec.handles`)."""


def decode(
    record: Record,
    dispatch: Dispatch,
    *,
    handles: str = ANY_HANDLED,
    ignores: frozenset[str] = frozenset(),
) -> CanonicalEvent:
    """The record's event, or `Unprocessable`; a type without a handler is "type: X is not
    <handles>", so the reason names what the consumer takes instead. A type in `ignores`
    is one the consumer reads on a shared topic but is not its business: it is valid here."""
    try:
        raw = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"value is not JSON: {exc}") from exc
    try:
        event = validate_event(raw, stored=True)
    except EventRejected as exc:
        raise Unprocessable(exc.reason) from exc
    if event.envelope.type not in dispatch and event.envelope.type not in ignores:
        raise Unprocessable(f"type: {event.envelope.type} is not {handles}")
    return event


@dataclass(frozen=True)
class Group:
    """One handler's events in read order, each beside the record it was decoded from."""

    handler: Handler
    events: list[CanonicalEvent]
    records: list[Record]


@dataclass(frozen=True)
class Sorted:
    """A batch decoded: each handler with its events in read order, the dead letters, and
    how many events were of a type the consumer ignores on purpose."""

    groups: list[Group]
    dead_letters: list[DeadLetter]
    ignored: int = 0


def decode_each(
    records: Sequence[Record],
    dispatch: Dispatch,
    *,
    handles: str = ANY_HANDLED,
    ignores: frozenset[str] = frozenset(),
) -> list[CanonicalEvent | Unprocessable]:
    """Each record's event, or why it cannot be applied, in order (see `decode`)."""
    out: list[CanonicalEvent | Unprocessable] = []
    for record in records:
        try:
            out.append(decode(record, dispatch, handles=handles, ignores=ignores))
        except Unprocessable as exc:
            out.append(exc)
    return out


def sort_batch(
    records: Sequence[Record],
    dispatch: Dispatch,
    *,
    handles: str = ANY_HANDLED,
    ignores: frozenset[str] = frozenset(),
    decoded: Sequence[CanonicalEvent | Unprocessable] | None = None,
) -> Sorted:
    """Handlers come in the order of the dispatch table, not of the batch: every batch then
    takes its row locks in the same order, whatever it holds. `decoded` is `decode_each` of
    `records` when the caller has it already (the consumer decodes a batch ahead)."""
    if decoded is None:
        decoded = decode_each(records, dispatch, handles=handles, ignores=ignores)
    by_handler: dict[int, list[tuple[CanonicalEvent, Record]]] = {}
    dead_letters: list[DeadLetter] = []
    ignored = 0
    for record, event in zip(records, decoded, strict=True):
        if isinstance(event, Unprocessable):
            dead_letters.append(DeadLetter.of(record, str(event)))
            continue
        if event.envelope.type not in dispatch:
            ignored += 1
            continue
        by_handler.setdefault(id(dispatch[event.envelope.type]), []).append((event, record))
    handlers = list({id(h): h for h in dispatch.values()}.items())
    groups = [
        Group(handler, [e for e, _ in by_handler[key]], [r for _, r in by_handler[key]])
        for key, handler in handlers
        if key in by_handler
    ]
    return Sorted(groups=groups, dead_letters=dead_letters, ignored=ignored)


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """The offset to read next per partition, once `records` are applied."""
    out: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        out[key] = max(out.get(key, 0), r.offset + 1)
    return out
