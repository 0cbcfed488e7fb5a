"""Candidates to waterfall rows and bucket entries: pure, no I/O.

A row is one group in one currency: sums are never mixed across currencies. A deal is
keyed by its (group, currency) on each side, so a deal whose currency changed between the
instants leaves one currency's row as `moved_out` and enters the other's as `moved_in`,
as a change of group does, and every row balances on its own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services.forecast_worker.rollup.grouping import GroupKey, row_order
from services.forecast_worker.waterfall.flow import (
    Movement,
    Waterfall,
    Window,
    group_movements,
    in_pipeline,
)
from services.forecast_worker.waterfall.repository import Candidate, Side

Key = GroupKey
"""(group, currency); the group is None when ungrouped or when the owner has none."""


@dataclass(frozen=True)
class Entry:
    """One deal's share of one bucket of one row."""

    candidate: Candidate
    key: Key
    movement: Movement


def _key(side: Side | None) -> Key | None:
    return None if side is None else (side.group, side.currency)


def entries(candidates: Sequence[Candidate], window: Window) -> Iterator[Entry]:
    for c in candidates:
        # A deal that did not exist at `from` has no group to move from: it is created.
        after = _key(c.after)
        before = _key(c.before) or after
        moved = group_movements(
            c.before.point if c.before else None,
            c.after.point if c.after else None,
            window,
            group_before=before,
            group_after=after,
        )
        for key, movement in moved:
            assert key is not None
            yield Entry(c, key, movement)


def rows(candidates: Sequence[Candidate], window: Window) -> dict[Key, Waterfall]:
    """Each row's waterfall: `start` is the pipeline at `from`, the buckets its changes."""
    out: dict[Key, Waterfall] = {}
    for c in candidates:
        if c.before is not None and in_pipeline(c.before.point, window):
            row = out.setdefault((c.before.group, c.before.currency), Waterfall())
            row.start += c.before.point.amount
    for e in entries(candidates, window):
        out.setdefault(e.key, Waterfall()).add(e.movement)
    return out


def ordered(table: dict[Key, Waterfall]) -> list[tuple[Key, Waterfall]]:
    """Rows by group then currency, a missing group or currency last: a stable CSV."""
    return sorted(table.items(), key=lambda item: row_order(item[0]))
