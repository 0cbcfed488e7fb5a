"""The metrics rows from what the repository read: pure, so grouping and ordering are
tested without a database.

A group appears when it closed or created a deal in the range; its open count is read
now, so a range before any data answers no rows even while deals are open."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from services.forecast_worker.metrics.figures import (
    ClosedDeal,
    StageVisit,
    outcomes,
    stage_figures,
    velocity,
)
from services.forecast_worker.metrics.repository import ClosedRow, GroupCount
from services.forecast_worker.metrics.schemas import MetricsRow, StageOut
from services.forecast_worker.rollup.grouping import GroupKey, row_order

Key = GroupKey


def stage_order(
    configured: Sequence[str], paths: Mapping[str, Sequence[tuple[str, datetime]]]
) -> list[str]:
    """The configured order of the default pipeline; without one, stages as first seen
    (deal by deal, in id order, each path in time order)."""
    if configured:
        return list(configured)
    seen: dict[str, None] = {}
    for deal_id in sorted(paths):
        for stage, _ in paths[deal_id]:
            seen.setdefault(stage, None)
    return list(seen)


def metrics_rows(
    closed: Iterable[ClosedRow],
    paths: Mapping[str, Sequence[tuple[str, datetime]]],
    order: Sequence[str],
    open_counts: Iterable[GroupCount],
    created: Iterable[GroupCount],
) -> list[MetricsRow]:
    deals: dict[Key, list[ClosedRow]] = defaultdict(list)
    for row in closed:
        deals[(row.group, row.currency)].append(row)
    opened = {(c.group, c.currency): c.count for c in open_counts}
    made = {(c.group, c.currency): c for c in created}
    rows = []
    for key in sorted(deals.keys() | made.keys(), key=row_order):
        group_deals = deals.get(key, [])
        result = outcomes(
            ClosedDeal(d.won, d.amount, d.created_at, d.close_date) for d in group_deals
        )
        stages = stage_figures(
            (
                [StageVisit(stage, at) for stage, at in paths.get(d.deal_id, ())]
                for d in group_deals
            ),
            order,
        )
        open_count = opened.get(key, 0)
        creation = made.get(key)
        rows.append(
            MetricsRow(
                group=key[0],
                currency=key[1],
                won_count=result.won_count,
                lost_count=result.lost_count,
                win_rate=result.win_rate,
                win_rate_value=result.win_rate_value,
                won_amount=result.won_amount,
                avg_won_amount=result.avg_won_amount,
                cycle_days_median=result.cycle_days_median,
                cycle_days_mean=result.cycle_days_mean,
                velocity=velocity(open_count, result),
                open_count=open_count,
                created_count=creation.count if creation else 0,
                created_amount=creation.amount if creation else Decimal(0),
                stages=[StageOut.model_validate(s, from_attributes=True) for s in stages],
            )
        )
    return rows
