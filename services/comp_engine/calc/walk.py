"""One component over one segment: the credits in order, each with what it earned. Pure.

The walk keeps two running figures: the *position* (quota credit so far, as attainment
points) and the *payout base* (payout credit so far). Each credit moves them and earns the
difference of the component's earnings before and after it (see `rates.py`), so a
retroactive tier or a decelerator released by this deal pays its uplift on this deal's
line, and the lines of a period always add up to what the period's totals earn.

Order of operations per credit, all unrounded (rounding is `series.py`'s):
1. base earnings: the rate table over the credit's slice (marginal) or the change in
   `rate(position) x payout base` (retroactive, interpolated);
2. the decelerator: while the position is under its threshold everything earned so far is
   paid at its multiplier, so crossing it pays the difference;
3. accelerators: the part of the slice above each threshold earns the base rate times
   (multiplier - 1) more, on a line of its own;
4. the cap per deal, then the cap per period, each taken from the accelerator first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.comp_engine.calc import rates
from services.comp_engine.calc.credits import Credit
from services.comp_engine.calc.rates import Table, Tier
from services.comp_engine.calc.traces import Trace, TraceSource, kept
from services.comp_engine.plans.document import Component, RateUnit, TierBasis

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
TEN_THOUSAND = Decimal(10_000)


@dataclass(slots=True)
class Entry:
    """A credit as the walk sees it: amounts already in the plan's currency. Not frozen,
    though nothing changes one once made (as `Earned` and `series.Raw`): one is made per
    credit, and a frozen class sets each field through `object.__setattr__`, which tripled
    the cost of making one (`traces.py`)."""

    credit: Credit
    fx_rate: Decimal
    """Deal currency -> plan currency, on the booking day."""
    quota_amount: Decimal
    """Added to the position: the credit's amount, 0 without quota credit, negative for
    a clawback that reduces attainment."""
    payout_amount: Decimal
    """Earning commission: the credit's amount, or 0."""
    reversal: bool = False


@dataclass(slots=True)
class Earned:
    """What a credit earned on a component. Not frozen, as `Entry` is not."""

    entry: Entry
    commission: Decimal
    accelerator: Decimal
    source: TraceSource
    """The step's trace, or what builds it on first read (`traces.py`)."""
    attainment: Decimal | None = None
    """On an attainment table, the rep's attainment (percent of quota) after the step: the
    trace's `position_after`, kept as a number so a reader of attainment alone (the
    simulation's bands) builds no trace."""

    @property
    def trace(self) -> Trace:
        return kept(self)

    def __call__(self) -> Trace:
        """Its trace, so that an `Earned` is the trace source of its component lines' raw
        amounts (`engine._StepRaw`) without a builder object of their own."""
        return kept(self)


class NoQuota(ValueError):
    """An attainment table needs the rep's quota for the period, and there is none."""


def table_for(component: Component, quota: Decimal | None, target_variable: Decimal) -> Table:
    spec = component.rate_table
    tiers = tuple(Tier(t.start, t.end, t.rate) for t in spec.tiers)
    if spec.basis is not TierBasis.ATTAINMENT:
        unit_value = 1 / HUNDRED
    elif quota is None or quota <= 0:
        raise NoQuota(f"component {component.id!r} tiers on attainment, and there is no quota")
    elif spec.unit is RateUnit.PERCENT_OF_AMOUNT:
        unit_value = quota / TEN_THOUSAND
    else:
        unit_value = target_variable / HUNDRED
    return Table(tiers, spec.mode, spec.boundary, unit_value)


def walk(
    component: Component,
    entries: Sequence[Entry],
    *,
    quota: Decimal | None,
    target_variable: Decimal,
) -> list[Earned]:
    table = table_for(component, quota, target_variable)
    if component.rate_table.basis is TierBasis.DEAL_AMOUNT:
        return _per_deal(component, table, entries)
    scale = Decimal(1)
    if component.rate_table.basis is TierBasis.ATTAINMENT:
        assert quota is not None  # table_for refused an attainment table without one
        scale = HUNDRED / quota
    state = _Running(component, table, scale)
    return [state.step(entry) for entry in entries]


@dataclass(slots=True)
class _Running:
    """One walk's running figures, and what it works out once for every step."""

    component: Component
    table: Table
    scale: Decimal
    """Position units per unit of money: 100 / quota for attainment, 1 for amounts."""
    amount: Decimal = ZERO
    payout: Decimal = ZERO
    base_total: Decimal = ZERO
    """Marginal: the sum of slices earned so far; otherwise rate(position) x payout base."""
    paid_total: Decimal = ZERO
    """After caps: what the period has earned so far on this component."""
    ended_at: tuple[Decimal, Decimal] | None = None
    """Marginal: the previous step's slice end and its value."""
    shown: Trace = field(init=False)
    """`table_trace` of the walk's component and table: the same for every step."""
    marginal: bool = field(init=False)
    ladder: tuple[tuple[Decimal, Decimal, Decimal], ...] = field(init=False)
    """Marginal: per accelerator, `accelerator_steps`' threshold and step, and what the
    threshold earns on the table (the only position an accelerator's slice can end at
    besides the step's own start and end)."""
    capped: bool = field(init=False)
    """Whether the component has a cap per deal or per period."""
    attainment: bool = field(init=False)
    """Whether the table tiers on attainment (each step then tells the attainment)."""
    carried: tuple[Decimal, Decimal] = field(init=False)
    """The position and payout points the walk stands at: the previous step's "after"
    figures, which are this step's "before" ones (the same sums times `scale`)."""

    def __post_init__(self) -> None:
        component, table = self.component, self.table
        self.shown = table_trace(component, table)
        self.marginal = table.mode is rates.TierMode.MARGINAL
        self.ladder = (
            tuple((t, step, rates.value(table, t)) for t, step in accelerator_steps(component))
            if self.marginal
            else ()
        )
        self.capped = component.cap_per_deal is not None or component.cap_per_period is not None
        self.attainment = component.rate_table.basis is TierBasis.ATTAINMENT
        self.carried = (self.amount * self.scale, self.payout * self.scale)

    def step(self, entry: Entry) -> Earned:
        """One credit's earnings. What the component and table decide is read from what
        `__post_init__` worked out, and a marginal table's common path (every step of most
        walks) is inline: per step, a few calls less is a tenth less."""
        component, table = self.component, self.table
        p0, y0 = self.carried
        scale = self.scale
        amount = self.amount + entry.quota_amount
        payout = self.payout + entry.payout_amount
        p1 = amount * scale
        y1 = payout * scale
        s0, s1 = p0, p0 + (y1 - y0)
        if self.marginal:
            # Each position the step visits is valued once. The start is mostly the very
            # number the previous step's slice ended at (the same digits and exponent, as
            # `compare_total` tells); an accelerator's slice runs from `max(s0, t)` to
            # `max(s1, t)`, each end the step's own or the threshold, valued in `ladder`.
            ended = self.ended_at
            if ended is not None and s0.compare_total(ended[0]) == 0:
                v0 = ended[1]
            else:
                v0 = rates.value(table, s0)
            v1 = rates.value(table, s1)
            self.ended_at = (s1, v1)
            base_before = self.base_total
            base_after = base_before + (v1 - v0)
            extras: tuple[Decimal, ...] = ()
            for t, step, v_t in self.ladder:
                extras += (((v_t if t > s1 else v1) - (v_t if t > s0 else v0)) * step,)
        else:
            base_before = flat_total(table, p0, y0)
            base_after = flat_total(table, p1, y1)
            extras = flat_accelerator_extras(component, table, s0, s1, p1)
        if component.decelerator is None:
            # Both factors are 1, and a product by 1 keeps every digit (the bases are
            # results of arithmetic, so within the context's precision already).
            f0 = f1 = ONE
            commission = base_after - base_before
        else:
            f0 = decel_factor(component, p0)
            f1 = decel_factor(component, p1)
            commission = f1 * base_after - f0 * base_before
        accelerator = sum(extras, ZERO)
        paid_before = self.paid_total
        applied: tuple[str, ...] = ()
        if self.capped:
            commission, accelerator, applied = cut_to_caps(
                commission,
                accelerator,
                per_deal=component.cap_per_deal,
                per_period=component.cap_per_period,
                paid_before=paid_before,
            )
        self.amount = amount
        self.payout = payout
        self.base_total = base_after
        self.paid_total = paid_before + (commission + accelerator)
        self.carried = (p1, y1)
        trace = _StepTrace(
            self.shown,
            component,
            table,
            scale,
            entry,
            (p0, p1, y0, y1, s1),
            (base_before, base_after, f0, f1),
            extras,
            (paid_before, applied),
            (commission, accelerator),
        )
        return Earned(entry, commission, accelerator, trace, p1 if self.attainment else None)


@dataclass(slots=True)
class _StepTrace:
    """What a step's trace is made of; called, it builds the trace. The tier walk and the
    decelerator's figures are worked out only then: most traces are never read. Not
    frozen, as no builder of a trace is (`traces.py`)."""

    shown: Trace
    component: Component
    table: Table
    scale: Decimal
    entry: Entry
    points: tuple[Decimal, Decimal, Decimal, Decimal, Decimal]
    """Position and payout points before and after, and the slice's end."""
    base: tuple[Decimal, Decimal, Decimal, Decimal]
    """Base earnings before and after, and the decelerator's factors before and after."""
    extras: tuple[Decimal, ...]
    """Per accelerator of the component, in its order."""
    caps: tuple[Decimal, tuple[str, ...]]
    """What the period had earned before the step, and the caps that applied."""
    earned: tuple[Decimal, Decimal]

    def __call__(self) -> Trace:
        p0, p1, y0, y1, s1 = self.points
        base_before, base_after, f0, f1 = self.base
        walk_steps = _walk_steps(self.table, p0, s1, p1)
        return {
            **self.shown,
            "position_per_unit": str(self.scale),
            "credit": credit_json(self.entry),
            "position_before": str(p0),
            "position_after": str(p1),
            "payout_points_before": str(y0),
            "payout_points_after": str(y1),
            "tier_walk": [s.as_json() for s in walk_steps],
            "base_before": str(base_before),
            "base_after": str(base_after),
            "decelerator": _decel_json(self.component, f0, f1),
            "accelerators": [
                {
                    "threshold": str(a.threshold),
                    "multiplier": str(a.multiplier),
                    "extra": str(x),
                }
                for a, x in zip(self.component.accelerators, self.extras, strict=True)
            ],
            "caps": caps_trace(
                self.component.cap_per_deal, self.component.cap_per_period, *self.caps
            ),
            "commission": str(self.earned[0]),
            "accelerator": str(self.earned[1]),
        }


def accelerator_steps(component: Component) -> tuple[tuple[Decimal, Decimal], ...]:
    """Per accelerator, its threshold and its multiplier's step over the one before (what
    the slice above the threshold earns on top of the base rate, per unit of it)."""
    found = []
    previous = ONE
    for accelerator in component.accelerators:
        found.append((accelerator.threshold, accelerator.multiplier - previous))
        previous = accelerator.multiplier
    return tuple(found)


def flat_total(table: Table, position: Decimal, payout_points: Decimal) -> Decimal:
    """Retroactive and interpolated: the rate the position reached, on the whole payout base."""
    index = rates.tier_at(table.tiers, position, table.boundary)
    rate = rates.rate_at(table, index, position)
    return rate * payout_points * table.unit_value


def decel_factor(component: Component, position: Decimal) -> Decimal:
    d = component.decelerator
    return d.multiplier if d is not None and position < d.threshold else ONE


def flat_accelerator_extras(
    component: Component, table: Table, start: Decimal, end: Decimal, reached: Decimal
) -> tuple[Decimal, ...]:
    """Retroactive and interpolated: per accelerator, the extra on the part of the slice
    above its threshold at the rate reached, times the multiplier's step (a marginal table's
    are worked out in `_Running.step`)."""
    if not component.accelerators:
        return ()
    index = rates.tier_at(table.tiers, reached, table.boundary)
    rate = rates.rate_at(table, index, reached)
    found = []
    previous = ONE
    for accelerator in component.accelerators:
        t = accelerator.threshold
        low, high = max(start, t), max(end, t)
        above = rate * (high - low) * table.unit_value
        found.append(above * (accelerator.multiplier - previous))
        previous = accelerator.multiplier
    return tuple(found)


def apply_caps(
    component: Component, commission: Decimal, accelerator: Decimal, *, paid_before: Decimal
) -> tuple[Decimal, Decimal, dict[str, Any]]:
    return capped(
        commission,
        accelerator,
        per_deal=component.cap_per_deal,
        per_period=component.cap_per_period,
        paid_before=paid_before,
    )


def capped(
    commission: Decimal,
    accelerator: Decimal,
    *,
    per_deal: Decimal | None,
    per_period: Decimal | None,
    paid_before: Decimal,
) -> tuple[Decimal, Decimal, dict[str, Any]]:
    """Commission and accelerator after the caps, and the trace of what was applied."""
    commission, accelerator, applied = cut_to_caps(
        commission, accelerator, per_deal=per_deal, per_period=per_period, paid_before=paid_before
    )
    return commission, accelerator, caps_trace(per_deal, per_period, paid_before, applied)


def cut_to_caps(
    commission: Decimal,
    accelerator: Decimal,
    *,
    per_deal: Decimal | None,
    per_period: Decimal | None,
    paid_before: Decimal,
) -> tuple[Decimal, Decimal, tuple[str, ...]]:
    """`capped` without its trace: the caps that applied, by name, for `caps_trace` (the
    walk builds that dict only when its trace is read)."""
    applied: tuple[str, ...] = ()
    if per_deal is not None and commission + accelerator > per_deal:
        commission, accelerator = _cut(commission, accelerator, per_deal)
        applied += ("per_deal",)
    if per_period is not None and commission + accelerator > per_period - paid_before:
        commission, accelerator = _cut(commission, accelerator, max(per_period - paid_before, ZERO))
        applied += ("per_period",)
    return commission, accelerator, applied


def caps_trace(
    per_deal: Decimal | None,
    per_period: Decimal | None,
    paid_before: Decimal,
    applied: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "cap_per_deal": None if per_deal is None else str(per_deal),
        "cap_per_period": None if per_period is None else str(per_period),
        "period_paid_before": str(paid_before),
        "applied": list(applied),
    }


def _cut(commission: Decimal, accelerator: Decimal, limit: Decimal) -> tuple[Decimal, Decimal]:
    """Bring commission + accelerator down to `limit`, taking from the accelerator first."""
    excess = commission + accelerator - limit
    from_accelerator = min(excess, max(accelerator, ZERO))
    return commission - (excess - from_accelerator), accelerator - from_accelerator


def _per_deal(component: Component, table: Table, entries: Sequence[Entry]) -> list[Earned]:
    found = []
    shown = table_trace(component, table)
    for entry in entries:
        amount = entry.payout_amount
        earned, steps = rates.earned(table, amount)
        commission, accelerator, caps = apply_caps(component, earned, ZERO, paid_before=ZERO)
        trace = {
            **shown,
            "credit": credit_json(entry),
            "position": str(amount),
            "tier_walk": [s.as_json() for s in steps],
            "caps": caps,
            "commission": str(commission),
            "accelerator": str(accelerator),
        }
        found.append(Earned(entry, commission, accelerator, trace))
    return found


def credit_json(entry: Entry) -> dict[str, Any]:
    c = entry.credit
    return {
        "deal_id": c.booking.deal_id,
        "booking": c.booking.number,
        "booked_on": c.booking.booked_on.isoformat(),
        "won_event_id": c.booking.won_event_id,
        "role": c.role,
        "share": str(c.share),
        "amount": str(c.amount),
        "currency": c.currency,
        "fx_rate_to_plan": str(entry.fx_rate),
        "quota_amount": str(entry.quota_amount),
        "payout_amount": str(entry.payout_amount),
        "reversal": entry.reversal,
        "contract_months": (c.booking.state.properties or {}).get("contract_months"),
    }


def _walk_steps(table: Table, start: Decimal, end: Decimal, reached: Decimal) -> list[rates.Step]:
    if table.mode is rates.TierMode.MARGINAL:
        return _slice_steps(rates.earned(table, start)[1], rates.earned(table, end)[1])
    index = rates.tier_at(table.tiers, reached, table.boundary)
    rate = rates.rate_at(table, index, reached)
    return [rates.Step(index, start, end, rate, rate * (end - start) * table.unit_value)]


def _slice_steps(start: Sequence[rates.Step], end: Sequence[rates.Step]) -> list[rates.Step]:
    """The tier walk of a marginal slice: per tier, the walk to its end less the walk to
    its start."""
    before = {s.tier: s for s in start}
    steps = []
    for s in end:
        low = before[s.tier].end if s.tier in before else s.start
        if s.end != low:
            steps.append(
                rates.Step(
                    s.tier,
                    low,
                    s.end,
                    s.rate,
                    s.earned - (before[s.tier].earned if s.tier in before else ZERO),
                )
            )
    return steps


def table_trace(component: Component, table: Table) -> dict[str, Any]:
    """The rate table a line was computed on, as its trace carries it."""
    return {
        "component": component.id,
        "basis": component.rate_table.basis.value,
        "mode": table.mode.value,
        "unit": component.rate_table.unit.value,
        "boundary": table.boundary.value,
        "tiers": [_tier_json(t) for t in table.tiers],
        "unit_value": str(table.unit_value),
    }


def _tier_json(tier: Tier) -> dict[str, str | None]:
    return {
        "from": str(tier.start),
        "to": None if tier.end is None else str(tier.end),
        "rate_percent": str(tier.rate),
    }


def _decel_json(component: Component, before: Decimal, after: Decimal) -> dict[str, str] | None:
    d = component.decelerator
    if d is None:
        return None
    return {
        "threshold": str(d.threshold),
        "multiplier": str(d.multiplier),
        "factor_before": str(before),
        "factor_after": str(after),
    }
