"""Which waterfall buckets a deal's change between two instants falls into: pure, no I/O.

The waterfall of a period P between instants `from` and `to` explains the change of P's
open pipeline (open deals whose close date lies in P, not deleted) by buckets:

    start + created + pulled_in + moved_in + increased
          - decreased - pushed_out - moved_out - lost - won = end

Each deal is judged only by its state at `from` and at `to` (the versions valid then), so
the answer is reproducible for any two past instants and a deal's intermediate edits
cannot make the books disagree. The equation holds exactly, per deal and so per group,
because every deal's buckets sum to its own change (`end_amount - start_amount`):

- in P's pipeline at both instants: the amount change, as `increased` or `decreased`;
- in it at `from` only: first the amount change up to its amount at `to`, then it leaves
  at that amount: `won` or `lost` (a deletion counts as lost), else `pushed_out` (still
  open, its close date moved out of P or cleared);
- in it at `to` only: it enters at its amount at `to`: `created` when it did not exist at
  `from`, else `pulled_in` (its close date moved into P, or it reopened);
- in it at neither, but closed won or lost in P between the two instants (it was not
  already closed that way at `from`): it entered and left inside the window, so it shows
  in both its entry bucket and `won` / `lost` at its amount at `to`, netting to zero.

Grouped (by rep, team, manager or region as of each instant), a deal whose group changed
leaves its old group as `moved_out` at its amount at `from` and enters the new one as
`moved_in` at its amount at `to` (then `won` / `lost` there if it closed in P), so each
group balances on its own. Summed over groups, `moved_in` and `moved_out` cancel only in
total: a grouped waterfall is a different lens from the ungrouped one, not its sum.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

ZERO = Decimal(0)
G = TypeVar("G", bound=Hashable | None)


class Bucket(StrEnum):
    CREATED = "created"
    PULLED_IN = "pulled_in"
    MOVED_IN = "moved_in"
    INCREASED = "increased"
    DECREASED = "decreased"
    PUSHED_OUT = "pushed_out"
    MOVED_OUT = "moved_out"
    LOST = "lost"
    WON = "won"


INFLOWS = frozenset({Bucket.CREATED, Bucket.PULLED_IN, Bucket.MOVED_IN, Bucket.INCREASED})
"""Buckets that add to the pipeline; every other bucket takes away."""


@dataclass(frozen=True)
class Window:
    """Period P (`start` inclusive, `end` exclusive) whose pipeline the waterfall explains."""

    start: date
    end: date

    def holds(self, day: date | None) -> bool:
        return day is not None and self.start <= day < self.end


@dataclass(frozen=True)
class DealPoint:
    """A deal as its version valid at one instant left it (amount 0 when it has none)."""

    status: str
    close_date: date | None
    amount: Decimal
    deleted: bool = False


@dataclass(frozen=True)
class Movement:
    bucket: Bucket
    amount: Decimal

    @property
    def signed(self) -> Decimal:
        return self.amount if self.bucket in INFLOWS else -self.amount


def in_pipeline(point: DealPoint | None, window: Window) -> bool:
    return (
        point is not None
        and not point.deleted
        and point.status == "open"
        and window.holds(point.close_date)
    )


def _closed_in(point: DealPoint | None, window: Window) -> Bucket | None:
    """WON or LOST when `point` is a deal closed that way with its close date in P."""
    if point is None or point.deleted or not window.holds(point.close_date):
        return None
    return {"won": Bucket.WON, "lost": Bucket.LOST}.get(point.status)


def _change(before: Decimal, after: Decimal) -> list[Movement]:
    if after > before:
        return [Movement(Bucket.INCREASED, after - before)]
    if after < before:
        return [Movement(Bucket.DECREASED, before - after)]
    return []


def _exit(after: DealPoint) -> Bucket:
    if after.deleted:
        return Bucket.LOST
    return {"won": Bucket.WON, "lost": Bucket.LOST}.get(after.status, Bucket.PUSHED_OUT)


def _passed_through(
    before: DealPoint | None, after: DealPoint | None, window: Window
) -> Bucket | None:
    """The closing bucket of a deal that closed in P between the instants without being in
    P's pipeline at either: not closed that same way at `from` already."""
    closed = _closed_in(after, window)
    if closed is None or _closed_in(before, window) == closed:
        return None
    return closed


def movements(before: DealPoint | None, after: DealPoint | None, window: Window) -> list[Movement]:
    """The buckets of one deal, ungrouped; `before` is None when it did not exist yet."""
    was, now = in_pipeline(before, window), in_pipeline(after, window)
    if was and now:
        assert before is not None
        assert after is not None
        return _change(before.amount, after.amount)
    if was:
        assert before is not None
        assert after is not None
        return [*_change(before.amount, after.amount), Movement(_exit(after), after.amount)]
    entry = Bucket.CREATED if before is None else Bucket.PULLED_IN
    if now:
        assert after is not None
        return [Movement(entry, after.amount)]
    closed = _passed_through(before, after, window)
    if closed is None:
        return []
    assert after is not None
    return [Movement(entry, after.amount), Movement(closed, after.amount)]


def group_movements(
    before: DealPoint | None,
    after: DealPoint | None,
    window: Window,
    *,
    group_before: G,
    group_after: G,
) -> list[tuple[G, Movement]]:
    """The buckets of one deal per group, for a deal in `group_before` at `from` and in
    `group_after` at `to` (a group is None for a deal whose owner has none; any hashable
    key will do, such as a (group, currency) pair)."""
    if group_before == group_after:
        return [(group_after, m) for m in movements(before, after, window)]
    out: list[tuple[G, Movement]] = []
    if in_pipeline(before, window):
        assert before is not None
        out.append((group_before, Movement(Bucket.MOVED_OUT, before.amount)))
    if in_pipeline(after, window):
        assert after is not None
        out.append((group_after, Movement(Bucket.MOVED_IN, after.amount)))
        return out
    closed = _passed_through(before, after, window)
    if closed is not None:
        assert after is not None
        out.append((group_after, Movement(Bucket.MOVED_IN, after.amount)))
        out.append((group_after, Movement(closed, after.amount)))
    return out


@dataclass
class Waterfall:
    """One group's waterfall; `end` is computed from the buckets, so `balances` checks
    the movements against an independently measured end."""

    start: Decimal = ZERO
    buckets: dict[Bucket, Decimal] = field(default_factory=lambda: dict.fromkeys(Bucket, ZERO))

    def add(self, movement: Movement) -> None:
        self.buckets[movement.bucket] += movement.amount

    @property
    def end(self) -> Decimal:
        return self.start + sum(
            (a if b in INFLOWS else -a for b, a in self.buckets.items()), start=ZERO
        )


def pipeline_amount(points: Iterable[DealPoint | None], window: Window) -> Decimal:
    """P's open pipeline at one instant: the sum the waterfall starts or ends at."""
    return sum((p.amount for p in points if p is not None and in_pipeline(p, window)), ZERO)
