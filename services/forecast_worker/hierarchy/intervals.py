"""A rep's or team's versions over dates, rebuilt from all its upsert events.

Upserts arrive late, out of order and more than once, so an entity is never patched: its
intervals are folded again from every event it has, sorted by (effective date, then the
ordering rule of `shared.ordering`). Events effective the same day fold into one interval;
each new effective date starts one, which ends where the next begins. The result depends
only on the set of events, never on the order they came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.dispatch import Unprocessable
from shared.ordering import OrderKey


@dataclass(frozen=True)
class Upsert:
    """One event's word on an entity: the fields it sets (an absent one keeps its value)."""

    entity_id: str
    effective: date
    key: OrderKey
    fields: Mapping[str, Any]

    @property
    def order(self) -> tuple[date, OrderKey]:
        return (self.effective, self.key)


@dataclass(frozen=True)
class Interval:
    """The entity as it stood from `valid_from` until `valid_to` (exclusive; None: now)."""

    entity_id: str
    valid_from: date
    valid_to: date | None
    fields: Mapping[str, Any]
    cause: OrderKey
    """The last event folded into it."""

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def build_intervals(upserts: Iterable[Upsert]) -> list[Interval]:
    """One entity's intervals, oldest first; they tile from its first effective date on.

    A redelivered event (same source and id) counts once."""
    unique = {(u.key.source, u.key.event_id): u for u in upserts}
    ordered = sorted(unique.values(), key=lambda u: u.order)
    if len({u.entity_id for u in ordered}) > 1:
        raise ValueError("intervals are built for one entity at a time")
    starts: list[tuple[date, dict[str, Any], OrderKey]] = []
    state: dict[str, Any] = {}
    for upsert in ordered:
        state = {**state, **upsert.fields}
        if starts and starts[-1][0] == upsert.effective:
            starts[-1] = (upsert.effective, state, upsert.key)
        else:
            starts.append((upsert.effective, state, upsert.key))
    ends: list[date | None] = [start for start, _, _ in starts[1:]]
    return [
        Interval(ordered[0].entity_id, start, end, fields, cause)
        for (start, fields, cause), end in zip(starts, [*ends, None], strict=True)
    ]


class HierarchyCycle(Unprocessable):
    """A team would be its own ancestor: the event that makes it so is dead-lettered, and
    its replay answers 422 with the path for as long as the cycle would remain."""

    def __init__(self, path: Sequence[str], day: date) -> None:
        super().__init__(f"team {' -> '.join(path)} forms a cycle as of {day.isoformat()}")
        self.path = list(path)
        self.day = day


def find_cycle(teams: Sequence[Interval], team_id: str) -> HierarchyCycle | None:
    """The first date on which `team_id`'s parent chain comes back to a team it passed.

    The hierarchy only changes where some interval starts, so those dates are all that
    need checking. Any cycle a new event makes goes through the team it names, since the
    hierarchy had none before."""
    for day in sorted({t.valid_from for t in teams}):
        parents = {t.entity_id: t.fields.get("parent_team_id") for t in teams if t.covers(day)}
        path = [team_id]
        current = parents.get(team_id)
        while current is not None:
            if current in path:
                return HierarchyCycle([*path[path.index(current) :], current], day)
            path.append(current)
            current = parents.get(current)
    return None
