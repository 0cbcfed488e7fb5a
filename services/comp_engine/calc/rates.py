"""Rate tables: what a position on a table earns, and the tier walk that shows why. Pure.

A component's earnings are a function of one number, its *position*: the period's
cumulative attainment in percent (tiers on attainment) or one deal's amount (tiers per
deal). Every deal's line is then `earned(after) - earned(before)`: the difference of the
function at the positions either side of the deal. That one rule gives every tier mode
its documented behaviour, including the ones that reach back:

- **marginal** (graduated, Spiff `mamount`): each slice of the position earns the rate of
  the tier it falls in, so a deal crossing a boundary is split across tiers;
- **retroactive** (highest tier, Oracle "unsplit", OCA sections): the whole position earns
  the rate of the tier it reached, so the deal that crosses a boundary also carries the
  uplift on everything before it;
- **interpolated** (Oracle "proportional within a tier"): the rate reached is the sum of
  the rates of the tiers passed plus the passed share of the current tier's rate (1% on
  0-1,000 and 2% on 1,000-5,000 give 1.5% at 2,000), and the whole position earns it; the
  open-ended last tier keeps the rate reached at its start.

`Boundary` says who owns a position exactly on a boundary (Oracle's "equal tier values":
by default the tier that starts there). Marginal and interpolated earnings are continuous
there, so it only changes the retroactive rate and which tier a trace names.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class TierMode(StrEnum):
    MARGINAL = "marginal"
    RETROACTIVE = "retroactive"
    INTERPOLATED = "interpolated"


class Boundary(StrEnum):
    UPPER = "upper"
    """A position exactly on a boundary belongs to the tier that starts there."""
    LOWER = "lower"
    """A position exactly on a boundary belongs to the tier that ends there."""


@dataclass(frozen=True, slots=True)
class Tier:
    start: Decimal
    end: Decimal | None
    """Exclusive of nothing by itself: `Boundary` decides who owns the exact value."""
    rate: Decimal
    """Percent."""


@dataclass(frozen=True, slots=True)
class Table:
    """A validated rate table: tiers contiguous from the first start, the last open-ended.

    `unit_value` is the money one rate-percent earns per position unit: the plan document
    turns "percent of amount" and "percent of target variable per attainment point" into
    it, so the walk itself never needs to know which one it is.
    """

    tiers: tuple[Tier, ...]
    mode: TierMode
    boundary: Boundary
    unit_value: Decimal
    starts: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    """Each tier's start, for finding the tier a position reaches by bisection."""
    filled: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    """Marginal: per tier, the sum `value` adds up over the tiers before it (each whole),
    in the same order from the same zero, so a position's value adds only its own tier's
    slice to it: the same operations on the same numbers, done once per table rather than
    per position."""

    def __post_init__(self) -> None:
        filled = []
        total = ZERO
        for tier in self.tiers:
            filled.append(total)
            if tier.end is not None:
                total += tier.rate * (tier.end - tier.start)
        object.__setattr__(self, "starts", tuple(t.start for t in self.tiers))
        object.__setattr__(self, "filled", tuple(filled))


@dataclass(frozen=True, slots=True)
class Step:
    """One tier's share of a position: the slice `[start, end]` of it at `rate`."""

    tier: int
    start: Decimal
    end: Decimal
    rate: Decimal
    earned: Decimal

    def as_json(self) -> dict[str, object]:
        return {
            "tier": self.tier + 1,
            "from": str(self.start),
            "to": str(self.end),
            "rate_percent": str(self.rate),
            "earned": str(self.earned),
        }


def tier_at(tiers: Sequence[Tier], position: Decimal, boundary: Boundary) -> int:
    """The index of the tier that owns `position`; below the first tier, the first."""
    owner = 0
    for index, tier in enumerate(tiers):
        if position > tier.start or (position == tier.start and boundary is Boundary.UPPER):
            owner = index
    return owner


def value(table: Table, position: Decimal) -> Decimal:
    """What `position` earns on `table` (unrounded): `earned` without the walk, for the
    differences the walk takes many of per deal."""
    if table.mode is not TierMode.MARGINAL:
        index = tier_at(table.tiers, position, table.boundary)
        return rate_at(table, index, position) * position * table.unit_value
    first = table.tiers[0]
    if position < first.start:
        return first.rate * (position - first.start) * table.unit_value
    # The tiers `_marginal` walks are the first and those starting below the position;
    # every one but the last is whole (the tiers are contiguous), so the last reached adds
    # its slice up to the position to what the whole ones add up to.
    index = bisect.bisect_left(table.starts, position, 1) - 1
    tier = table.tiers[index]
    return (table.filled[index] + tier.rate * (position - tier.start)) * table.unit_value


def earned(table: Table, position: Decimal) -> tuple[Decimal, tuple[Step, ...]]:
    """What `position` earns on `table` (unrounded), and the walk that adds up to it."""
    if table.mode is TierMode.MARGINAL:
        return _marginal(table, position)
    index = tier_at(table.tiers, position, table.boundary)
    rate = rate_at(table, index, position)
    amount = rate * position * table.unit_value
    return amount, (Step(index, ZERO, position, rate, amount),)


def _marginal(table: Table, position: Decimal) -> tuple[Decimal, tuple[Step, ...]]:
    steps: list[Step] = []
    first = table.tiers[0]
    if position < first.start:
        # Below the table (a clawback that lowers attainment past its start) the first
        # rate continues, so the function stays continuous and every difference is fair.
        amount = first.rate * (position - first.start) * table.unit_value
        return amount, (Step(0, first.start, position, first.rate, amount),)
    total = ZERO
    for index, tier in enumerate(table.tiers):
        if position <= tier.start and index > 0:
            break
        top = position if tier.end is None else min(position, tier.end)
        amount = tier.rate * (top - tier.start) * table.unit_value
        steps.append(Step(index, tier.start, top, tier.rate, amount))
        total += amount
    return total, tuple(steps)


def rate_at(table: Table, index: int, position: Decimal) -> Decimal:
    """The rate the whole position earns (retroactive and interpolated modes)."""
    tier = table.tiers[index]
    if table.mode is not TierMode.INTERPOLATED:
        return tier.rate
    passed = sum((t.rate for t in table.tiers[:index]), ZERO)
    if tier.end is None:
        return passed
    clamped = min(max(position, tier.start), tier.end)
    return passed + tier.rate * (clamped - tier.start) / (tier.end - tier.start)
