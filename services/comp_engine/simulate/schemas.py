"""What `POST /v1/comp/simulate` takes and answers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.comp_engine.plans.document import PlanDocument
from services.comp_engine.plans.schemas import CompDate, FxRateIn
from shared.events import DealFields
from shared.money import CurrencyCode, DecimalAmount
from shared.values import UtcDatetime


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancellationIn(_In):
    """A `deal.cancelled` event's data (the deal is the change's)."""

    cancelled_at: UtcDatetime
    reason: str = Field(min_length=1, max_length=1000)
    contract_end: date | None = None


class ChangeIn(_In):
    time: UtcDatetime
    type: Literal["created", "updated", "deleted", "cancelled"] = "updated"
    fields: DealFields = Field(default_factory=DealFields)
    cancellation: CancellationIn | None = Field(
        default=None, description="Given exactly when `type` is 'cancelled'."
    )

    @model_validator(mode="after")
    def _cancellation_with_its_type(self) -> Self:
        if (self.type == "cancelled") != (self.cancellation is not None):
            raise ValueError("'cancellation' is given exactly when type is 'cancelled'")
        return self

    def stored_fields(self) -> dict[str, Any]:
        """What the comp engine would store for this change (`intake/handler.py`)."""
        if self.cancellation is not None:
            return self.cancellation.model_dump(mode="json")
        return self.fields.changed_fields()


class DealIn(_In):
    deal_id: str = Field(min_length=1, max_length=256)
    changes: list[ChangeIn] = Field(min_length=1)


class AssignmentIn(_In):
    rep_id: str = Field(min_length=1, max_length=256)
    start: CompDate
    end: CompDate | None = None
    payout_currency: CurrencyCode | None = None


class QuotaIn(_In):
    rep_id: str = Field(min_length=1, max_length=256)
    period_start: date
    period_end: date
    amount: DecimalAmount
    currency: CurrencyCode


class PaymentIn(_In):
    deal_id: str
    invoice_id: str
    paid_at: UtcDatetime
    amount: DecimalAmount
    currency: CurrencyCode


class InlineIn(_In):
    """A worked example given whole: deals with their changes, who is on the plan, and
    what else the calculation reads. Nothing stored is read or written."""

    deals: list[DealIn]
    assignments: list[AssignmentIn] = Field(min_length=1, max_length=10_000)
    quotas: list[QuotaIn] = Field(default_factory=list, max_length=100_000)
    fx_rates: list[FxRateIn] = Field(default_factory=list, max_length=100_000)
    payments: list[PaymentIn] = Field(default_factory=list, max_length=100_000)


class StoredIn(_In):
    """The stored deals of a date range, under the draft plan instead of the reps' own."""

    from_: date = Field(alias="from")
    to: date = Field(description="Exclusive.")
    compare_to_plan: str | None = Field(
        default=None, description="Only the reps on this plan; all assigned reps if absent."
    )
    lines_for_rep: str | None = Field(
        default=None,
        max_length=256,
        description="Also return this rep's simulated lines in the range, with their traces "
        "(a year of every rep's lines is far too many to return; totals cover them all).",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SimulateIn(_In):
    plan: PlanDocument
    effective_from: CompDate = date(2000, 1, 1)
    today: CompDate | None = Field(
        default=None, description="The calculation's today; now if absent."
    )
    inline: InlineIn | None = None
    stored: StoredIn | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.inline is None) == (self.stored is None):
            raise ValueError("give exactly one of 'inline' or 'stored'")
        return self


class RepTotal(BaseModel):
    rep_id: str
    currency: str
    simulated: DecimalAmount
    current: DecimalAmount | None = None
    difference: DecimalAmount | None = None


class SimulateOut(BaseModel):
    lines: list[dict[str, Any]] = Field(
        description="As the ledger would hold them, with traces: every line of an inline "
        "simulation; in stored mode, those of `stored.lines_for_rep` in the range."
    )
    reps: list[RepTotal]
    attainment_distribution: dict[str, int] = Field(
        description="Rep-periods by their final attainment band (attainment tables only)."
    )
    waiting: list[dict[str, str]]
    total_difference: dict[str, Decimal] = Field(default_factory=dict)
    current_from_ledger: int | None = Field(
        default=None,
        description="Stored mode: of the reps compared, how many had their current plans' "
        "side read from their ledger (current, and computed for an equivalent day) rather "
        "than computed again.",
    )
