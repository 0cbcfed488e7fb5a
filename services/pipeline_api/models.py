"""The `pipeline` schema: the durable event log (the source of truth) and relay state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import make_metadata

SCHEMA = "pipeline"
CRM_ACCOUNT_EVENTS = "source LIKE 'crm://%' AND envelope -> 'data' ? 'account_id'"
"""The rows the account indexes cover; a query using them repeats this condition."""


class PipelineBase(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


class StoredEvent(PipelineBase):
    """One accepted event, exactly as it will be published.

    `seq` is the log's own order (what the relay publishes by); `published_at` is cleared
    when the broker is found to have lost its state, so the relay sends the event again.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        # The relay's claim condition, whole: a partial index matching only part of it
        # let the planner choose a bitmap scan, which never clears the dead entries of
        # published rows, and every claim read all of them (benchmarks/RESULTS.md).
        Index(
            "ix_events_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL AND unpublishable_at IS NULL"),
        ),
        Index(
            "ix_events_unpublishable",
            "seq",
            postgresql_where=text("unpublishable_at IS NOT NULL"),
        ),
        # An account merge finds the deals on the merged account (accounts/repository.py
        # `deals_with_account`): by account, then each candidate's latest account. Only
        # CRM webhook events: the intake API cannot write crm:// sources, and pays nothing.
        Index(
            "ix_events_account",
            "source",
            text("((envelope -> 'data'::text) ->> 'account_id'::text)"),
            postgresql_where=text(CRM_ACCOUNT_EVENTS),
        ),
        Index(
            "ix_events_account_subject",
            "source",
            "subject",
            postgresql_where=text(CRM_ACCOUNT_EVENTS),
        ),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(Text)
    partition_key: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the relay could not send this row for a reason of its own (not the broker
    # being away): the relay skips it until an operator replays it.
    unpublishable_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unpublishable_error: Mapped[str | None] = mapped_column(Text)


class BrokerIncarnation(PipelineBase):
    """The broker incarnations the relay has published the log into, newest last."""

    __tablename__ = "broker_incarnations"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    republished_events: Mapped[int] = mapped_column(BigInteger)


class Source(PipelineBase):
    """A connected CRM account. `config` is the whole `SourceIn`, secrets included: they
    are read only to authenticate deliveries and never leave through the API."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("kind", "account_id"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookRequest(PipelineBase):
    """Every authenticated webhook request as it arrived, for audit and replay."""

    __tablename__ = "webhook_requests"
    __table_args__ = (Index("ix_webhook_requests_source_id", "source_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    ignored: Mapped[list[str] | None] = mapped_column(JSONB)
    """Why items of the body were acknowledged without being stored or parked."""


class ParkedEvent(PipelineBase):
    """A CRM change that could not become a canonical event yet (the intake DLQ).

    `replayable` changes failed only for want of a mapping, or for being dated in the
    future, and are mapped again by `POST /v1/dlq/replay` (and automatically: when their
    source's mapping changes, and, for future-dated ones, once their time has come).
    """

    __tablename__ = "parked_events"
    __table_args__ = (
        Index(
            "ix_parked_events_open", "source_id", "id", postgresql_where=text("replayed_at IS NULL")
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[str] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    replayable: Mapped[bool] = mapped_column(Boolean)
    change: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ResyncJob(PipelineBase):
    """A request to fetch deals from the CRM's API (gap, merge, restore, or on demand)."""

    __tablename__ = "resync_jobs"
    __table_args__ = (
        Index("ix_resync_jobs_pending", "id", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_resync_jobs_running",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[str] = mapped_column(Text)
    crm_ids: Mapped[list[str]] = mapped_column(JSONB)
    activity_kind: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    progress: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Which worker runs the job, and until when unless it renews: a job whose worker died
    # is taken up again once the lease expires. `attempts` counts the takings.
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AccountAlias(PipelineBase):
    """A CRM account merged away (`merged_id`) and the account it was merged into, both
    the CRM's own ids. Kept so that a deal change naming the merged account, however late
    it comes, lands on the survivor (crm/mapping.py `map_deal`); chains are followed,
    cycles are refused (accounts/merges.py `record`)."""

    __tablename__ = "account_aliases"
    __table_args__ = (
        # The merge sweep (accounts/sweep.py) reads the aliases recorded lately, every few
        # seconds in every replica: without a merge, one look-up of an empty index range.
        Index("ix_account_aliases_recorded_at", "recorded_at"),
    )

    source_id: Mapped[str] = mapped_column(Text, primary_key=True)
    merged_id: Mapped[str] = mapped_column(Text, primary_key=True)
    survivor_id: Mapped[str] = mapped_column(Text)
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_key: Mapped[str] = mapped_column(Text)
    """The merge's event key: the re-point updates' ids derive from it, so every path
    that re-points a deal for this merge writes the same event."""
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    """When we stored (or last replaced) the merge, by the database's clock: the merge
    sweep looks again for the merged accounts' deals for a while after it."""
