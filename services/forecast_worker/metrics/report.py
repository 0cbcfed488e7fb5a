"""The metrics rows from what the repository read: pure, so grouping and ordering are
tested without a database.

A group appears when it closed or created a deal in the range; its open count is read
now, so a range before any data answers no rows even while deals are open."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.forecast_worker.metrics.figures import (
    ClosedDeal,
    OutcomeTotals,
    StageTotals,
    StageVisit,
    outcome_totals,
    outcomes_from_totals,
    stage_figures_from_totals,
    stage_totals,
    velocity,
)
from services.forecast_worker.metrics.repository import ClosedRow, GroupCount, Key
from services.forecast_worker.metrics.schemas import MetricsRow, StageOut
from services.forecast_worker.rollup.grouping import row_order


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


@dataclass(frozen=True)
class GroupTotals:
    """What one (group, currency) closed in the range, before any ratio or rounding."""

    outcomes: OutcomeTotals
    stages: Mapping[str, StageTotals]


def metrics_rows(
    closed: Iterable[ClosedRow],
    paths: Mapping[str, Sequence[tuple[str, datetime]]],
    order: Sequence[str],
    open_counts: Iterable[GroupCount],
    created: Iterable[GroupCount],
) -> list[MetricsRow]:
    """The rows from every closed deal and its stage path, totalled here in Python: the
    reference the SQL totals of `metrics.totals` are tested against."""
    deals: dict[Key, list[ClosedRow]] = defaultdict(list)
    for row in closed:
        deals[(row.group, row.currency)].append(row)
    totals = {
        key: GroupTotals(
            outcome_totals(
                ClosedDeal(d.won, d.amount, d.created_at, d.close_date) for d in group_deals
            ),
            stage_totals(
                (
                    [StageVisit(stage, at) for stage, at in paths.get(d.deal_id, ())]
                    for d in group_deals
                ),
                order,
            ),
        )
        for key, group_deals in deals.items()
    }
    return rows_from_totals(totals, order, open_counts, created)


NOTHING_CLOSED = GroupTotals(OutcomeTotals(0, 0, Decimal(0), Decimal(0), 0, 0, None), {})


def rows_from_totals(
    totals: Mapping[Key, GroupTotals],
    order: Sequence[str],
    open_counts: Iterable[GroupCount],
    created: Iterable[GroupCount],
) -> list[MetricsRow]:
    """One row per group and currency that closed or created a deal, sorted."""
    opened = {(c.group, c.currency): c.count for c in open_counts}
    made = {(c.group, c.currency): c for c in created}
    rows = []
    for key in sorted(totals.keys() | made.keys(), key=row_order):
        group = totals.get(key, NOTHING_CLOSED)
        result = outcomes_from_totals(group.outcomes)
        stages = stage_figures_from_totals(group.stages, order)
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
