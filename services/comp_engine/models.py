"""The `comp` schema: plans, assignments, FX rates, the deal and reference facts the
calculation reads, and the ledger with what happens to its lines (disputes, holds, period
closes).

The ledger is append-only in the database itself: a trigger (migration
`comp_ledger`) refuses UPDATE, DELETE and TRUNCATE on `ledger_lines` whatever the role, so
a correction can only ever be a new line.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.consumer_store import consumer_tables
from shared.db import make_metadata

SCHEMA = "comp"


class CompBase(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


class PlanVersionRow(CompBase):
    """One version of a plan document; a new version supersedes from its `effective_from`."""

    __tablename__ = "plan_versions"

    plan_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AssignmentRow(CompBase):
    """A rep on a plan from `start` to `end` (exclusive; open while null). One rep's
    assignments never overlap: the route checks under a per-rep lock and answers 409."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_rep_id", "rep_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rep_id: Mapped[str] = mapped_column(Text)
    plan_id: Mapped[str] = mapped_column(Text)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    payout_currency: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FxRateRow(CompBase):
    __tablename__ = "fx_rates"

    base: Mapped[str] = mapped_column(Text, primary_key=True)
    quote: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DealChangeRow(CompBase):
    """Every deal event the comp engine consumed, keyed by its identity (the dedupe set):
    a deal's history is these rows in CRM order, folded."""

    __tablename__ = "deal_changes"
    __table_args__ = (Index("ix_deal_changes_deal_id", "deal_id"),)

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    deal_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sequence: Mapped[int] = mapped_column(Numeric(31, 0))
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReferenceFacts:
    """What a reference event last said, newest CRM time winning (replays change nothing)."""

    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)


class QuotaRow(ReferenceFacts, CompBase):
    __tablename__ = "quotas"
    __table_args__ = (Index("ix_quotas_rep_id", "rep_id"),)

    quota_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rep_id: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str] = mapped_column(Text)


class PaymentRow(ReferenceFacts, CompBase):
    """An `invoice.paid` event: pay-on-cash plans release commission in proportion."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_deal_id", "deal_id"),)

    invoice_id: Mapped[str] = mapped_column(Text, primary_key=True)
    deal_id: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str] = mapped_column(Text)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RepTeamRow(ReferenceFacts, CompBase):
    """A rep's team from `effective_from` (a `rep.upserted` event), for roll-up credit."""

    __tablename__ = "rep_teams"

    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(Text)


class TeamManagerRow(ReferenceFacts, CompBase):
    """A team's manager from `effective_from` (a `team.upserted` event). The manager id is
    the rep id the manager is paid under."""

    __tablename__ = "team_managers"

    team_id: Mapped[str] = mapped_column(Text, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, primary_key=True)
    manager_id: Mapped[str | None] = mapped_column(Text)


class DealRepRow(CompBase):
    """Every rep a deal ever named (owner or split): whose ledger a change of it can move."""

    __tablename__ = "deal_reps"
    __table_args__ = (Index("ix_deal_reps_rep_id", "rep_id"),)

    deal_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)


class DirtyRepRow(CompBase):
    """A rep whose ledger may be out of date: written in the transaction that changed its
    inputs, cleared by the recalculation that posted what changed."""

    __tablename__ = "dirty_reps"

    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ComputedRepRow(CompBase):
    """The day each rep's ledger was last computed for, written in the transaction that
    posted it: while the rep is not dirty, its ledger holds what `engine.compute` gives for
    that day (and for any day `segments.same_lines_on` finds equivalent), so a stored
    simulation reads the plan-as-it-is side from the ledger instead of computing it again.
    A recalculation that fails drops the row: the ledger no longer follows the inputs."""

    __tablename__ = "computed_reps"

    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    computed_for: Mapped[date] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class WaitingRow(CompBase):
    """What a recalculation could not compute and why (a deal in a currency without an FX
    rate, an attainment table without a quota): the comp engine's dead-letter place for
    calculations. Each recalculation of a rep replaces that rep's rows, so a wait ends by
    itself when what it waited for arrives (a new FX rate marks every rep dirty). `id` names
    a row for the operators' dead-letter API and stays while the same wait goes on."""

    __tablename__ = "waiting"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    rep_id: Mapped[str] = mapped_column(Text, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerLineRow(CompBase):
    """One line of money, never changed once written.

    `period` is where the amount was earned, `posted_period` where it was posted: they
    differ for a prior-period adjustment (a change that reached a closed period). The key
    columns (rep, period, kind, rule, deal, booking, role) are what recalculation compares
    by; `trace` is how the amount was made, enough to redo it by hand.
    """

    __tablename__ = "ledger_lines"
    __table_args__ = (
        Index("ix_ledger_lines_rep_id_posted_period", "rep_id", "posted_period", "id"),
        Index(
            "ix_ledger_lines_key",
            "rep_id",
            "period",
            "kind",
            "rule",
            "deal_id",
            "booking",
            "role",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rep_id: Mapped[str] = mapped_column(Text)
    period: Mapped[str] = mapped_column(Text)
    posted_period: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(Text)
    deal_id: Mapped[str] = mapped_column(Text)
    booking: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[str] = mapped_column(Text)
    trace: Mapped[dict[str, Any]] = mapped_column(JSONB)
    cause: Mapped[str | None] = mapped_column(
        Text, doc="The event or action that made the recalculation post it."
    )
    reason: Mapped[str | None] = mapped_column(Text, doc="An admin adjustment's reason.")
    author: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PeriodCloseRow(CompBase):
    """A period's close: requested, then approved, after which its statements are frozen
    and any change reaching it posts into the first open period."""

    __tablename__ = "period_closes"

    period: Mapped[str] = mapped_column(Text, primary_key=True)
    requested_by: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    held_line_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    """The period's lines on hold when it closed (not paid by its close): its frozen
    statements show these as held whatever happens to the holds later. NULL for periods
    closed before it was recorded, whose statements read the holds as they are."""


class HoldRow(CompBase):
    """Earned but not payable until released: a hold on one line, a deal or a rep."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    released_by: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DisputeRow(CompBase):
    __tablename__ = "disputes"
    __table_args__ = (Index("ix_disputes_rep_id", "rep_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    line_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_lines.id"))
    rep_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DisputeStepRow(CompBase):
    """Every step of a dispute, append-only: who moved it to which state, when, and why."""

    __tablename__ = "dispute_steps"
    __table_args__ = (Index("ix_dispute_steps_dispute_id", "dispute_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dispute_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("disputes.id"))
    status: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    adjustment_line_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_lines.id")
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


CONSUMER_TABLES = consumer_tables(CompBase.metadata)
