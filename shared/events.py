"""The canonical event contract (DESIGN.md, "Canonical events").

One Pydantic model per `type` validates `data`; `CANONICAL_TYPES` says where each type is
published and which field keys it, so one deal's events share a partition. Models forbid
unknown fields: a misspelt field is a rejected event with a reason, not silent loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import topics
from shared.deal_fields import (
    DealField,
    DealStatus,
    DealType,
    ForecastCategory,
    Kind,
    event_model_mismatches,
)
from shared.envelope import CloudEvent
from shared.money import CurrencyCode, DecimalAmount
from shared.values import STORED, UtcDatetime, json_has_nul

Id = Annotated[str, Field(min_length=1, max_length=256)]
ActivityKind = Literal["call", "email", "meeting", "task", "note"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


REVENUE_SPLIT_ROLES = frozenset({"owner", "revenue"})
"""Split roles that share the deal's revenue: together at most 100%. Any other role is an
overlay (Salesforce's overlay splits), credited on top and free to take the total over 100%."""


class Split(_Strict):
    rep_id: Id
    percent: DecimalAmount = Field(
        ge=Decimal(0), le=Decimal(1000), description="Up to 100 for revenue roles, 1000 overlays"
    )
    role: str = Field(default="owner", min_length=1, max_length=100)


class DealFields(_Strict):
    """Every field a deal event may set; `None` means "not in this event"."""

    name: str | None = Field(default=None, max_length=1000)
    account_id: Id | None = None
    owner_id: Id | None = None
    amount: DecimalAmount | None = None
    currency: CurrencyCode | None = None
    stage: str | None = Field(default=None, min_length=1, max_length=200)
    pipeline: str | None = None
    forecast_category: ForecastCategory | None = None
    close_date: date | None = None
    created_at: UtcDatetime | None = None
    deal_type: DealType | None = None
    status: DealStatus | None = Field(
        default=None, description="Derived from the stage when absent (won/lost stage names)."
    )
    splits: list[Split] | None = None
    properties: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _splits_total(self) -> DealFields:
        revenue = [s.percent for s in self.splits or () if s.role in REVENUE_SPLIT_ROLES]
        if sum(revenue) > 100:
            raise ValueError(
                "revenue splits (roles owner, revenue) add up to more than 100 percent"
            )
        return self

    def changed_fields(self) -> dict[str, Any]:
        """The fields this event sets, in JSON form (what the projection stores)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"deal_id"})


def deal_event_type(field: DealField) -> Any:
    """The type an event gives a value of `field`'s kind (`None` aside)."""
    if field.kind is Kind.ENUM:
        return Literal[field.values]
    return _EVENT_TYPES[field.kind]


_EVENT_TYPES: dict[Kind, Any] = {
    Kind.TEXT: str,
    Kind.ID: Id,
    Kind.MONEY: DecimalAmount,
    Kind.CURRENCY: CurrencyCode,
    Kind.DATE: date,
    Kind.DATETIME: UtcDatetime,
    Kind.SPLITS: list[Split],
}
# At import, so that a field added to the definition and not here (or the other way round)
# stops every service at start-up; shared/deal_fields.py says why DealFields is written out.
_MISMATCHES = event_model_mismatches(DealFields, deal_event_type, others=("properties",))
if _MISMATCHES:
    raise TypeError("DealFields differs from shared/deal_fields.py: " + "; ".join(_MISMATCHES))


class DealCreated(DealFields):
    """A deal came into being (or back: a CRM restore). Only the id is required, because a
    CRM may create a deal unowned, or send its name and stage as separate changes."""

    deal_id: Id

    @model_validator(mode="after")
    def _currency_with_amount(self) -> DealCreated:
        if self.amount is not None and self.currency is None:
            raise ValueError("currency is required when amount is given")
        return self


class DealUpdated(DealFields):
    deal_id: Id

    @model_validator(mode="after")
    def _changes_something(self) -> DealUpdated:
        if not self.model_fields_set - {"deal_id"}:
            raise ValueError("an update must carry at least one changed field")
        return self


class DealDeleted(_Strict):
    deal_id: Id
    merged_into: Id | None = Field(
        None, description="Set when the deal disappeared by being merged into another"
    )


class DealCancelled(_Strict):
    """The contract of a won deal ended early (a churned or cancelled subscription). The deal
    stays won, since the booking happened; commission reads it as a clawback trigger,
    prorated to `contract_end` when the plan prorates. No CRM sends this natively: billing
    or contract systems post it to `POST /v1/events`."""

    deal_id: Id
    cancelled_at: UtcDatetime = Field(description="When the contract was cancelled")
    reason: str = Field(min_length=1, max_length=1000)
    contract_end: date | None = Field(
        None, description="Where the cancelled contract's term would have ended"
    )


class ActivityLogged(_Strict):
    activity_id: Id
    kind: ActivityKind
    deal_id: Id | None = None
    account_id: Id | None = None
    rep_id: Id | None = None
    occurred_at: UtcDatetime
    properties: dict[str, Any] = Field(default_factory=dict)


class ActivityDeleted(_Strict):
    """An activity removed in the CRM. It stops counting, but is kept for audit; a later
    `activity.logged` (a CRM restore) brings it back, an older one does not."""

    activity_id: Id
    deleted_at: UtcDatetime | None = Field(
        None,
        description="When it was deleted, if that is not the event's `time` (which still "
        "orders it)",
    )


class RepUpserted(_Strict):
    rep_id: Id
    name: str
    email: str | None = None
    team_id: Id | None = None
    active: bool = True
    effective_from: date | None = None


class TeamUpserted(_Strict):
    team_id: Id
    name: str
    parent_team_id: Id | None = None
    manager_id: Id | None = None
    effective_from: date | None = None


class TeamUpsertedV2(TeamUpserted):
    """v1 plus where the team sells and who manages it by name; v1 stays accepted and
    leaves both as the team's earlier version had them."""

    region: str | None = Field(default=None, max_length=200)
    manager_name: str | None = Field(default=None, max_length=1000)


class QuotaSet(_Strict):
    quota_id: Id
    rep_id: Id | None = None
    team_id: Id | None = None
    period_start: date
    period_end: date
    amount: DecimalAmount
    currency: CurrencyCode

    @model_validator(mode="after")
    def _one_owner(self) -> QuotaSet:
        if (self.rep_id is None) == (self.team_id is None):
            raise ValueError("a quota belongs to exactly one of rep_id or team_id")
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


class InvoicePaid(_Strict):
    invoice_id: Id
    deal_id: Id | None = None
    amount: DecimalAmount
    currency: CurrencyCode
    paid_at: UtcDatetime


@dataclass(frozen=True)
class EventKind:
    model: type[_Strict]
    topic: str
    key_fields: tuple[str, ...]
    subject_field: str


CANONICAL_TYPES: dict[str, EventKind] = {
    "com.salesops.deal.created.v1": EventKind(DealCreated, topics.DEAL, ("deal_id",), "deal_id"),
    "com.salesops.deal.updated.v1": EventKind(DealUpdated, topics.DEAL, ("deal_id",), "deal_id"),
    "com.salesops.deal.deleted.v1": EventKind(DealDeleted, topics.DEAL, ("deal_id",), "deal_id"),
    "com.salesops.deal.cancelled.v1": EventKind(
        DealCancelled, topics.DEAL, ("deal_id",), "deal_id"
    ),
    "com.salesops.activity.logged.v1": EventKind(
        ActivityLogged, topics.ACTIVITY, ("deal_id", "account_id", "activity_id"), "activity_id"
    ),
    # A deletion names no deal, so it is keyed by the activity: it may reach the worker
    # before or after the activity's own events, and the worker orders them by `time`.
    "com.salesops.activity.deleted.v1": EventKind(
        ActivityDeleted, topics.ACTIVITY, ("activity_id",), "activity_id"
    ),
    "com.salesops.rep.upserted.v1": EventKind(RepUpserted, topics.REFERENCE, ("rep_id",), "rep_id"),
    "com.salesops.team.upserted.v1": EventKind(
        TeamUpserted, topics.REFERENCE, ("team_id",), "team_id"
    ),
    "com.salesops.team.upserted.v2": EventKind(
        TeamUpsertedV2, topics.REFERENCE, ("team_id",), "team_id"
    ),
    "com.salesops.quota.set.v1": EventKind(QuotaSet, topics.REFERENCE, ("quota_id",), "quota_id"),
    "com.salesops.invoice.paid.v1": EventKind(
        InvoicePaid, topics.REFERENCE, ("invoice_id",), "invoice_id"
    ),
}


class EventRejected(ValueError):
    """An event that cannot be accepted; `reason` says what and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventInFuture(EventRejected):
    """An event dated further ahead of our clock than the allowed skew. Stored, it would
    win the ordering against every real change until its time came (year 9000: forever);
    once its time is near it can be accepted, so a CRM's may be parked and replayed."""


MAX_FUTURE = timedelta(minutes=5)
"""The skew allowed between a sender's clock and ours, unless configured otherwise."""


@dataclass(frozen=True)
class CanonicalEvent:
    """A validated event. `raw` is the object as received with `subject` filled in, and
    `encoded` its JSON: what the event log stores and republishes, encoded once."""

    envelope: CloudEvent
    payload: _Strict
    topic: str
    partition_key: str
    subject: str
    raw: dict[str, Any]
    encoded: bytes


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc or '(event)'}: {err['msg']}")
    return "; ".join(parts)


def validate_event(
    raw: Any,
    *,
    max_future: timedelta | None = None,
    now: datetime | None = None,
    stored: bool = False,
) -> CanonicalEvent:
    """Check one event against the envelope and its type's model; raise `EventRejected`.

    With `max_future` (where events enter: intake, webhooks, re-syncs) its `time` must lie
    at most that far ahead of `now`, else `EventInFuture`. Consumers of stored events
    leave it out and pass `stored`: what was admitted stays valid, including naive data
    times admitted before they were refused (read as UTC, as they were then). The time is
    checked after everything else, so an `EventInFuture` is an event that only its time
    keeps out."""
    context = {STORED: stored}
    if not isinstance(raw, dict):
        raise EventRejected(f"an event must be a JSON object, got {type(raw).__name__}")
    try:
        envelope = CloudEvent.model_validate(raw, context=context)
    except ValidationError as exc:
        raise EventRejected(describe_validation_error(exc)) from exc
    kind = CANONICAL_TYPES.get(envelope.type)
    if kind is None:
        raise EventRejected(f"type: unknown event type {envelope.type!r}")
    try:
        payload = kind.model.model_validate(envelope.data, context=context)
    except ValidationError as exc:
        raise EventRejected(describe_validation_error(exc, "data")) from exc
    subject = str(getattr(payload, kind.subject_field))
    if envelope.subject is None:
        raw = {**raw, "subject": subject}
    elif envelope.subject != subject:
        raise EventRejected(
            f"subject: {envelope.subject!r} does not match data.{kind.subject_field} {subject!r}"
        )
    for name in kind.key_fields:
        value = getattr(payload, name)
        if value is not None:
            key = str(value)
            break
    encoded = _storable(raw)
    # Last: a future-dated change is parked to be replayed once due, so it must be valid
    # in every other way, else it would wait for a time that can never make it valid.
    if max_future is not None:
        latest = (now or datetime.now(UTC)) + max_future
        if envelope.time > latest:
            raise EventInFuture(
                f"time: {envelope.time.isoformat()} lies more than "
                f"{max_future.total_seconds():g}s in the future (our clock allows up to "
                f"{latest.isoformat()})"
            )
    return CanonicalEvent(envelope, payload, kind.topic, key, subject, raw, encoded)


def _storable(raw: dict[str, Any]) -> bytes:
    """The event as JSON, if the encoder and PostgreSQL's jsonb both take it: nesting past
    the encoder's depth, integers past 64 bits and NUL characters are refused here, as this
    event's rejection, rather than failing the batch it would be stored with."""
    try:
        encoded = orjson.dumps(raw)
    except orjson.JSONEncodeError as exc:
        raise EventRejected(f"(event): cannot be stored as JSON: {exc}") from exc
    if json_has_nul(encoded):
        raise EventRejected("(event): text must not contain NUL characters (\\u0000)")
    return encoded
