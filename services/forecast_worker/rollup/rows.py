"""The roll-up's rows: the query's sums through `figures`, with the latest call and
adjustments beside them. Pure.

A call or adjustment sits on the row of its rep or team in its own currency; one whose
group has no deal and no quota in that currency gets a row of zeros, so a number someone
called is never hidden. Calls are a rep's, so only rep rows carry one; adjustments target a
rep or a team, so manager and region rows carry none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from services.forecast_worker.calls.models import Adjustment, Call
from services.forecast_worker.calls.repository import AdjustmentKey
from services.forecast_worker.rollup.figures import GroupSums, figures
from services.forecast_worker.rollup.grouping import row_order
from services.forecast_worker.rollup.repository import GroupBy, GroupRow
from services.forecast_worker.rollup.schemas import RollupRow

_CALLED = ("commit", "best_case", "pipeline")


def _call_cells(call: Call) -> dict[str, Any]:
    return {
        **{f"call_{c}": getattr(call, c) for c in _CALLED},
        "call_author": call.author,
        "call_recorded_at": call.recorded_at,
    }


def rollup_rows(
    group_by: GroupBy,
    sums: Sequence[GroupRow],
    calls: Mapping[str, Call],
    adjustments: Mapping[AdjustmentKey, Adjustment],
) -> list[RollupRow]:
    cells: dict[tuple[str | None, str | None], dict[str, Any]] = {
        (row.group, row.currency): {} for row in sums
    }
    by_key = {(row.group, row.currency): row.sums for row in sums}
    if group_by == "rep":
        for rep_id, call in calls.items():
            cells.setdefault((rep_id, call.currency), {}).update(_call_cells(call))
    if group_by in ("rep", "team"):
        for (kind, target, category), adjustment in adjustments.items():
            if kind == group_by:
                key = (target, adjustment.currency)
                cells.setdefault(key, {})[f"adjustment_{category}"] = adjustment.amount
    ordered = sorted(cells, key=row_order)
    out = []
    for group, currency in ordered:
        numbers = asdict(figures(by_key.get((group, currency), GroupSums())))
        del numbers["open_pipeline"]
        out.append(RollupRow(group=group, currency=currency, **numbers, **cells[(group, currency)]))
    return out
