"""Who is credited for a booking, with what, and whether it counts toward quota, earns
commission, or both. Pure.

A booking with splits credits each split's rep its percent (the deal's `splits`); without
splits its owner gets all of it. Roles `owner` and `revenue` are revenue splits (they total
at most 100%); any other role is an overlay and may take the total over 100%, as Salesforce
overlay splits do. Each credited rep's own plan (the version in force on the booking day)
decides, per role, whether the credit counts toward quota and whether it earns; each
manager's plan decides whether managers up the effective-dated hierarchy get roll-up credit
for it (revenue splits only, so an overlay is not counted twice up the chain), whether or
not the rep below is on a plan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.comp_engine.calc.bookings import Booking
from services.comp_engine.calc.inputs import Inputs
from services.comp_engine.plans.document import ManagerRollup
from shared.events import REVENUE_SPLIT_ROLES

HUNDRED = Decimal(100)
ONE = Decimal(1)


CreditId = tuple[str, int, str]
"""(deal id, booking number, role): a credit's identity within one rep."""


@dataclass(slots=True, init=False)
class Credit:
    """Not frozen, though nothing changes a credit once built: a chunk builds tens of
    thousands, and a frozen class sets each of its fields through `object.__setattr__`,
    which cost twice the rest of building one. Not hashable either, as nothing needs it."""

    rep_id: str
    role: str
    """'owner', a split role, or 'manager:<level>'."""
    share: Decimal
    """Of the booking's amount, 0..1."""
    booking: Booking
    quota: bool
    payout: bool
    amount: Decimal = field(repr=False, compare=False)
    currency: str = field(repr=False, compare=False)
    order: tuple[object, ...] = field(repr=False, compare=False)
    """Where the credit falls in its period's walk: booking day, then CRM time, then ids,
    so a recompute walks deals in the same order whatever order they arrived in. The day
    is its ordinal, which orders alike: a list sort compares first items that are ints in
    C, and a rep's credits sorted in half the time they took by dates."""

    def __init__(
        self, rep_id: str, role: str, share: Decimal, booking: Booking, quota: bool, payout: bool
    ) -> None:
        """Written out, with the figures sorting, grouping and the walk read several times
        per credit set here once: the dataclass's own `__init__` then `__post_init__` took
        a third longer a credit (two calls, and each field read back from the slot)."""
        state = booking.state
        assert state.amount is not None
        assert state.currency is not None
        self.rep_id = rep_id
        self.role = role
        self.share = share
        self.booking = booking
        self.quota = quota
        self.payout = payout
        self.amount = state.amount * share
        self.currency = state.currency
        self.order = (
            booking.booked_on.toordinal(),
            booking.won_at,
            booking.deal_id,
            booking.number,
            role,
        )

    @property
    def id(self) -> CreditId:
        """Built when asked, not kept: only a clawed-back booking's credits are looked up by
        it (a few in a chunk), and a tuple kept per credit was allocated and freed for
        every one of them."""
        b = self.booking
        return (b.deal_id, b.number, self.role)


class Crediting:
    """Credits of one calculation's many deals: whether any wanted rep can get roll-up
    credit at all is the same for every deal, so it is worked out once."""

    def __init__(self, inputs: Inputs, only: Collection[str] | None = None) -> None:
        self.inputs = inputs
        self.only = only
        # Roll-up credit goes only to managers: a chunk of reps none of whom manages anyone
        # (a chunk of sellers) would climb the hierarchy of every split to keep nothing.
        self.rollup = only is None or not inputs.manager_ids.isdisjoint(only)

    def credits(self, bookings: Iterable[Booking]) -> list[Credit]:
        """Every credit of the bookings, or only those of the reps in `only` (a chunk of a
        recompute reads deals its reps share with reps of other chunks: their credits would
        be built only to be dropped)."""
        inputs, only = self.inputs, self.only
        found: list[Credit] = []
        for booking in bookings:
            day = booking.booked_on
            for rep_id, role, share in _shares(booking):
                if only is None or rep_id in only:
                    # `_share_rule` written out: one call less a credit, a tenth of the
                    # time `credits` took.
                    plan = inputs.plan_on(rep_id, day)
                    if plan is not None:
                        rules = plan[1].document.credit_rules
                        rule = rules.roles.get(role, rules.owner)
                        found.append(Credit(rep_id, role, share, booking, rule.quota, rule.payout))
                if not self.rollup or role not in REVENUE_SPLIT_ROLES:
                    continue
                for level, manager in enumerate(inputs.managers_of(rep_id, day, 10), start=1):
                    if only is not None and manager not in only:
                        continue
                    rollup = _rollup(inputs, manager, day)
                    if rollup is None or level > rollup.levels:
                        continue
                    found.append(
                        Credit(
                            manager, f"manager:{level}", share, booking, rollup.quota, rollup.payout
                        )
                    )
        return found


def _shares(booking: Booking) -> list[tuple[str, str, Decimal]]:
    state = booking.state
    if state.splits:
        return [(s.rep_id, s.role, s.percent / HUNDRED) for s in state.splits]
    if state.owner_id is None:
        return []
    return [(state.owner_id, "owner", ONE)]


def _rollup(inputs: Inputs, manager_id: str, day: date) -> ManagerRollup | None:
    found = inputs.plan_on(manager_id, day)
    return None if found is None else found[1].document.credit_rules.manager_rollup
