"""From a deal's history to its bookings: the won episodes commission is paid on. Pure.

A deal's history is its states in CRM order (the same `OrderKey` order the forecast uses),
so duplicates and reorders are settled before this runs. A *booking* starts where the deal
becomes won and carries what commission needs: the amount, currency, owner and splits
credited, the booking day, and how the episode ended if it did (lost, deleted, cancelled),
which is what a clawback reads.

Changes inside a won episode follow the plan's clawback window: within it, increases in
amount and changes of owner or splits are credited as if they had been there at booking
(the difference posts where it belongs), and reductions only if the plan claws back on
`amount_reduced` (recalculated at the original rates, as Xactly does); after the window the
booking is settled and later changes are ignored. Without a clawback policy the booking is
settled at the win: nothing claws back and later changes change nothing.

A deal won again after an episode that did *not* claw back continues that booking rather
than paying a second time; after a clawback, winning again is a new booking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.comp_engine.plans.document import Clawback, ClawbackTrigger


@dataclass(frozen=True, slots=True)
class SplitShare:
    rep_id: str
    percent: Decimal
    role: str


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A `deal.cancelled` event: which one, when the contract ended, why, and where its
    term would have ended (`None`: the deal's contract term decides)."""

    event_id: str
    cancelled_at: datetime
    reason: str
    contract_end: date | None


@dataclass(frozen=True, slots=True)
class DealState:
    """One state of a deal after a change, at the CRM time of that change."""

    at: datetime
    event_id: str
    status: str
    """'open', 'won', 'lost' or 'deleted'."""
    amount: Decimal | None
    currency: str | None
    owner_id: str | None
    splits: tuple[SplitShare, ...]
    close_date: date | None
    deal_type: str | None
    pipeline: str | None
    properties: dict[str, Any]
    cancelled: bool = False
    """A cancellation event arrived: the contract ended after the deal was won."""
    cancellation: Cancellation | None = None
    """The `deal.cancelled` event that ended the won episode this state belongs to."""


@dataclass(frozen=True, slots=True)
class Ending:
    at: datetime
    event_id: str
    trigger: ClawbackTrigger
    cancellation: Cancellation | None = None


@dataclass(slots=True)
class Booking:
    """Not frozen, though nothing changes one once made (`replace` makes the next): one is
    made per deal, and a frozen class sets each field through `object.__setattr__`, which
    more than doubled the cost of making one. Not hashable either, as its state is not
    (its properties are a dict)."""

    deal_id: str
    number: int
    """1 for the deal's first booking, 2 after a clawback and a new win, ..."""
    booked_on: date
    won_at: datetime
    won_event_id: str
    state: DealState
    """The credited state: amount, currency, owner, splits, type, pipeline, properties."""
    ending: Ending | None
    """How the booking was clawed back, if it was; `None` while it stands."""


def bookings(deal_id: str, history: Sequence[DealState], policy: Clawback | None) -> list[Booking]:
    """The bookings of one deal, oldest first. The booking day is fixed at the win."""
    found: list[Booking] = []
    for state in history:
        standing = found[-1] if found and found[-1].ending is None else None
        if standing is not None:
            found[-1] = _follow(standing, state, policy)
        elif _bookable(state):
            found.append(_booked(deal_id, len(found) + 1, state))
    return found


def bookings_if_alike(deal_id: str, history: Sequence[DealState]) -> list[Booking] | None:
    """`bookings` of `history` if every clawback policy, and none, gives the same, else
    `None`: only `_follow` reads the policy, and only for states after a booking starts,
    so a history whose first bookable state is its last (most deals: won once, never
    changed after) never reads it. Its bookings are then known from that one pass."""
    for number, state in enumerate(history):
        if _bookable(state):
            return [_booked(deal_id, 1, state)] if number == len(history) - 1 else None
    return []


def _booked(deal_id: str, number: int, state: DealState) -> Booking:
    """A booking won in `state`: its fields by position, as keywords cost more than half
    again as much per booking (one a deal)."""
    return Booking(
        deal_id, number, state.close_date or state.at.date(), state.at, state.event_id, state, None
    )


def _bookable(state: DealState) -> bool:
    """Won with an amount, and not an episode a cancellation event ended: after one, the
    deal stays won without being booked again until it is lost and won anew."""
    return (
        state.status == "won"
        and state.amount is not None
        and state.currency is not None
        and state.cancellation is None
    )


def _within(booking: Booking, at: datetime, policy: Clawback | None) -> bool:
    return policy is not None and at - booking.won_at <= timedelta(days=policy.window_days)


def _follow(booking: Booking, state: DealState, policy: Clawback | None) -> Booking:
    """The booking after `state`: ended, amended, or as it was. A cancellation event counts
    from its `cancelled_at` (not before the win), so one dated back ends the booking when the
    contract did."""
    cancellation = state.cancellation
    at = state.at if cancellation is None else max(cancellation.cancelled_at, booking.won_at)
    if not _within(booking, at, policy):
        return booking
    assert policy is not None
    trigger = _trigger(state)
    if trigger is not None:
        if trigger in policy.triggers:
            event_id = state.event_id if cancellation is None else cancellation.event_id
            return replace(booking, ending=Ending(at, event_id, trigger, cancellation))
        return booking
    if state.status != "won" or state.amount is None or state.currency is None:
        return booking
    credited = booking.state
    reduced = state.currency == credited.currency and state.amount < (credited.amount or 0)
    if reduced and ClawbackTrigger.AMOUNT_REDUCED not in policy.triggers:
        state = replace(state, amount=credited.amount)
    return replace(booking, state=replace(state, close_date=credited.close_date))


def _trigger(state: DealState) -> ClawbackTrigger | None:
    if state.cancelled:
        return ClawbackTrigger.CANCELLED
    if state.status == "deleted":
        return ClawbackTrigger.DELETED
    if state.status in ("lost", "open"):
        return ClawbackTrigger.LOST
    return None
