"""A commission plan as data: the document an admin writes (JSON or YAML), validated here.

Nothing in a plan is code. Every mechanism the engine has is a field of this document, with
its meaning in its description, so `GET /v1/comp/plan-schema` (this model's JSON Schema) is
the whole manual. Amounts are decimal strings (floats are refused: they have already lost
cents), rates are percents, attainment is in percent of quota.

Validation here is structural and local (tiers contiguous, one of `amount` / `rate`, ids
unique); what needs other data (a rep exists, assignments do not overlap) is checked where
that data is.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.comp_engine.calc.rates import Boundary, TierMode
from shared.money import CurrencyCode, DecimalAmount

RuleId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Percent = Annotated[DecimalAmount, Field(ge=Decimal(0), le=Decimal(100_000))]
NonNegative = Annotated[DecimalAmount, Field(ge=Decimal(0))]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodLength(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class TierBasis(StrEnum):
    ATTAINMENT = "attainment"
    """Tiers on the period's cumulative attainment, in percent of quota, deal after deal."""
    PERIOD_AMOUNT = "period_amount"
    """Tiers on the period's cumulative credited amount, deal after deal (Spiff `mamount`
    with the running total as its initial value)."""
    DEAL_AMOUNT = "deal_amount"
    """Tiers on each deal's own credited amount, independent of the others (Oracle's
    transactions "processed individually")."""


class RateUnit(StrEnum):
    PERCENT_OF_AMOUNT = "percent_of_amount"
    """A rate of 10 pays 10% of the credited amount."""
    PERCENT_OF_TARGET = "percent_of_target_per_attainment_point"
    """A rate of 1 pays 1% of the period's target variable per point of attainment, so a
    flat 1 pays exactly the target variable at 100% (a pay curve)."""


class TierIn(_Doc):
    start: DecimalAmount = Field(alias="from", description="Where the tier starts.")
    end: DecimalAmount | None = Field(
        default=None, alias="to", description="Where it ends; omitted on the last tier only."
    )
    rate: Percent = Field(description="Percent, in the table's unit.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RateTableIn(_Doc):
    basis: TierBasis = TierBasis.ATTAINMENT
    mode: TierMode = Field(
        default=TierMode.MARGINAL,
        description="marginal: each slice at its tier's rate; retroactive: the whole at the "
        "rate of the tier reached; interpolated (Oracle 'proportional within a tier'): the "
        "rate reached is the sum of the rates of the tiers passed plus the passed share of "
        "the current tier's rate, and the whole earns it (the open-ended last tier keeps "
        "the rate reached at its start).",
    )
    unit: RateUnit = RateUnit.PERCENT_OF_AMOUNT
    boundary: Boundary = Field(
        default=Boundary.UPPER,
        description="Who owns a position exactly on a boundary: 'upper' the tier starting "
        "there (exactly 100% earns the tier from 100), 'lower' the tier ending there.",
    )
    tiers: list[TierIn] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _contiguous(self) -> Self:
        for number, (tier, following) in enumerate(zip(self.tiers, self.tiers[1:], strict=False)):
            if tier.end is None:
                raise ValueError(f"tier {number + 1} has no 'to' but is not the last tier")
            if tier.end <= tier.start:
                raise ValueError(f"tier {number + 1} ends at or before where it starts")
            if following.start != tier.end:
                raise ValueError(
                    f"tier {number + 2} starts at {following.start}, not where tier "
                    f"{number + 1} ends ({tier.end}): tiers must be contiguous"
                )
        if self.tiers[-1].end is not None:
            raise ValueError("the last tier must be open-ended (no 'to')")
        if self.tiers[0].start < 0:
            raise ValueError("the first tier cannot start below 0")
        if self.basis is not TierBasis.ATTAINMENT and self.unit is RateUnit.PERCENT_OF_TARGET:
            raise ValueError("only a table on attainment can pay a percent of the target")
        return self


class Filter(_Doc):
    """Which credits a component or SPIFF counts; every given field must match."""

    deal_types: list[Literal["new", "expansion", "renewal"]] | None = None
    products: list[str] | None = Field(
        default=None, description="Matched against the deal's `properties.product`."
    )
    pipelines: list[str] | None = None
    properties: dict[str, str] | None = Field(
        default=None, description="Custom properties that must equal these values."
    )


POSITION = "In the table's position units: attainment percent, or the period's amount."


class Accelerator(_Doc):
    threshold: NonNegative = Field(description="Where it starts. " + POSITION)
    multiplier: DecimalAmount = Field(
        gt=Decimal(1), le=Decimal(100), description="Applied marginally above the threshold."
    )


class Decelerator(_Doc):
    threshold: NonNegative = Field(description="Under it, the multiplier holds. " + POSITION)
    multiplier: DecimalAmount = Field(ge=Decimal(0), lt=Decimal(1))


class Component(_Doc):
    id: RuleId
    name: str = Field(default="", max_length=200)
    measure: Literal["booked_amount"] = "booked_amount"
    filter: Filter = Field(default_factory=Filter)
    rate_table: RateTableIn
    accelerators: list[Accelerator] = Field(default_factory=list, max_length=10)
    decelerator: Decelerator | None = Field(
        default=None,
        description="While cumulative attainment is under the threshold, everything earned "
        "so far is paid at the multiplier; crossing it pays the difference (retroactive).",
    )
    cap_per_deal: NonNegative | None = None
    cap_per_period: NonNegative | None = None
    minimum_per_period: NonNegative | None = Field(
        default=None, description="Topped up at the period's end when earnings fall short."
    )
    payment_timing: Literal["on_booking", "on_cash"] | None = Field(
        default=None,
        description="Overrides the plan's `payment.timing` for this component's lines.",
    )

    @model_validator(mode="after")
    def _accelerators_need_attainment(self) -> Self:
        per_deal = self.rate_table.basis is TierBasis.DEAL_AMOUNT
        if per_deal and (self.accelerators or self.decelerator):
            raise ValueError("accelerators and decelerators act on the period, not per deal")
        starts = [a.threshold for a in self.accelerators]
        if starts != sorted(set(starts)):
            raise ValueError("accelerators must start at increasing attainments")
        return self


class Spiff(_Doc):
    id: RuleId
    name: str = Field(default="", max_length=200)
    window_from: date
    window_to: date = Field(description="Inclusive.")
    filter: Filter = Field(default_factory=Filter)
    amount: NonNegative | None = Field(default=None, description="Paid once per matching deal.")
    rate: Percent | None = Field(default=None, description="Percent of the credited amount.")

    @model_validator(mode="after")
    def _one_payout(self) -> Self:
        if (self.amount is None) == (self.rate is None):
            raise ValueError("a SPIFF pays exactly one of 'amount' or 'rate'")
        if self.window_to < self.window_from:
            raise ValueError("window_to is before window_from")
        return self


class Bonus(_Doc):
    id: RuleId
    at_attainment: NonNegative = Field(description="Paid once when the period reaches it.")
    amount: NonNegative | None = None
    percent_of_target: Percent | None = None

    @model_validator(mode="after")
    def _one_payout(self) -> Self:
        if (self.amount is None) == (self.percent_of_target is None):
            raise ValueError("a bonus pays exactly one of 'amount' or 'percent_of_target'")
        return self


class CreditShare(_Doc):
    quota: bool = Field(default=True, description="Counts toward attainment.")
    payout: bool = Field(default=True, description="Earns commission.")


class ManagerRollup(_Doc):
    levels: int = Field(default=1, ge=1, le=10, description="Managers up the hierarchy credited.")
    quota: bool = True
    payout: bool = True


class CreditRules(_Doc):
    """Who is credited for a won deal. Quota credit (attainment) and payout credit
    (commission) are separate, so an overlay can earn without inflating a quota."""

    owner: CreditShare = Field(default_factory=CreditShare)
    roles: dict[str, CreditShare] = Field(
        default_factory=dict,
        description="Per split role (the deal's `splits[].role`); roles not listed share "
        "as 'owner'. Splits of roles other than 'owner' may take the total over 100%.",
    )
    manager_rollup: ManagerRollup | None = None


class ClawbackTrigger(StrEnum):
    LOST = "lost"
    DELETED = "deleted"
    CANCELLED = "cancelled"
    AMOUNT_REDUCED = "amount_reduced"


class Clawback(_Doc):
    window_days: int = Field(ge=0, le=3660, description="Days after close a trigger claws back.")
    triggers: list[ClawbackTrigger] = Field(min_length=1)
    base: Literal["paid", "original_rate"] = Field(
        default="original_rate",
        description="original_rate: what the deal earned; paid: what of it was paid out.",
    )
    extent: Literal["full", "partial", "prorated"] = "full"
    partial_percent: Percent | None = None
    contract_months_default: int = Field(
        default=12, ge=1, le=600, description="Term for 'prorated' when the deal has none."
    )
    reduces_attainment: bool = Field(
        default=False,
        description="If true, the deal's quota credit is reversed in the clawback's period.",
    )

    @model_validator(mode="after")
    def _partial(self) -> Self:
        if (self.extent == "partial") != (self.partial_percent is not None):
            raise ValueError("partial_percent is given exactly when extent is 'partial'")
        return self


class Draw(_Doc):
    kind: Literal["recoverable", "non_recoverable"]
    amount_per_period: NonNegative
    recovery_start_period: int = Field(
        default=1, ge=1, description="The assignment's n-th period from which to recover."
    )
    recovery_percent: Percent = Field(
        default=Decimal(100), description="Share of earnings above the draw used to recover."
    )
    max_recovery_per_period: NonNegative | None = Field(
        default=None, description="At most this much is recovered in one period."
    )
    max_recovery_percent_of_earnings: Percent | None = Field(
        default=None,
        description="At most this percent of the period's earnings is recovered in it (on "
        "a plan paid on cash, its cash-payable earnings).",
    )


class Payment(_Doc):
    timing: Literal["on_booking", "on_cash"] = Field(
        default="on_booking",
        description="on_cash: a deal's lines are earned at booking, withheld there by a "
        "`payable_deferral` line and released by `payable_release` lines in proportion to "
        "the `invoice.paid` amounts received for the deal, in the period each was paid. "
        "A component's `payment_timing` overrides this for its own lines; SPIFFs follow it.",
    )
    max_payable_per_period: Annotated[DecimalAmount, Field(gt=Decimal(0))] | None = Field(
        default=None,
        description="Payout cap: at most this much (in the plan's currency) becomes payable "
        "in one period; the excess is carried forward into the next period's payable "
        "(`payout_cap_excess` out, `payout_cap_carry_in` in), never lost.",
    )


class PlanDocument(_Doc):
    name: str = Field(min_length=1, max_length=200)
    currency: CurrencyCode
    period: PeriodLength = PeriodLength.QUARTER
    target_variable: NonNegative = Field(description="Variable pay at 100% for one period.")
    quota: NonNegative | None = Field(
        default=None,
        description="Quota per period when no `quota.set` event gives the rep one.",
    )
    ramp: list[Annotated[DecimalAmount, Field(gt=0, le=1)]] = Field(
        default_factory=list,
        max_length=24,
        description="Quota share for the rep's first periods on the plan (e.g. 0.25, 0.5).",
    )
    components: list[Component] = Field(min_length=1, max_length=20)
    spiffs: list[Spiff] = Field(default_factory=list, max_length=50)
    bonuses: list[Bonus] = Field(default_factory=list, max_length=20)
    credit_rules: CreditRules = Field(default_factory=CreditRules)
    clawback: Clawback | None = None
    draw: Draw | None = None
    payment: Payment = Field(default_factory=Payment)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [c.id for c in self.components] + [s.id for s in self.spiffs]
        ids += [b.id for b in self.bonuses]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique, repeated: {', '.join(duplicates)}")
        return self
