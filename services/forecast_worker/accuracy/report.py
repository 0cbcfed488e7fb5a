"""Accuracy of snapshots against the actual closed won: which forecasts each snapshot made
and their summaries. Pure, no I/O; the arithmetic is `figures`.

Each snapshot of a closed period forecast, per (group, currency) of its grouping:
- the call and the adjustment it carried (`call_commit` on rep rows, `adjustment_commit` on
  rep and team rows), where there was one;
- the computed `commit_plus_closed` and `best_case_plus_commit_plus_closed`, for every
  group of the snapshot or of the actuals: a group the snapshot did not have forecast 0
  (so a deal nobody saw coming counts as a miss, not as nothing).
The actual is the period's closed won now, in the same (group, currency); 0 where none.
`weeks_before_end` = whole weeks from the snapshot's instant to the period's end (0 for the
period-end snapshot), so accuracy can be read by horizon, as Gong reads "the call at week W".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.forecast_worker.accuracy.figures import ZERO, Accuracy, Outcome, accuracy
from services.forecast_worker.rollup.grouping import GroupKey, row_order
from services.forecast_worker.rollup.schemas import RollupRow
from shared.periods import midnight

CALLED = ("call_commit", "adjustment_commit")
COMPUTED = ("commit_plus_closed", "best_case_plus_commit_plus_closed")
MEASURES = (*CALLED, *COMPUTED)
ONE_WEEK = timedelta(weeks=1)

Key = GroupKey
"""(group, currency)."""


@dataclass(frozen=True)
class Taken:
    """One snapshot of the period, with its rows of the grouping asked for."""

    snapshot_id: int
    as_of: datetime
    kind: str
    rows: Sequence[RollupRow]


@dataclass(frozen=True)
class Forecast:
    period: str
    snapshot_id: int
    as_of: datetime
    kind: str
    weeks_before_end: int
    group: str | None
    currency: str | None
    measure: str
    outcome: Outcome


@dataclass(frozen=True)
class Summary:
    group: str | None
    currency: str | None
    measure: str
    weeks_before_end: int | None
    """None: over every snapshot whatever its horizon."""
    periods: int
    accuracy: Accuracy


def forecasts(
    period: str, period_end: date, taken: Iterable[Taken], actuals: Mapping[Key, Decimal]
) -> list[Forecast]:
    """Every forecast the snapshots of one closed period made, against `actuals`."""
    end = midnight(period_end)
    out = []
    for snapshot in taken:
        rows = {(r.group, r.currency): r for r in snapshot.rows}
        weeks = (end - snapshot.as_of) // ONE_WEEK
        for key in sorted(rows.keys() | actuals.keys(), key=row_order):
            row = rows.get(key)
            values: dict[str, Decimal | None] = {m: ZERO for m in COMPUTED}
            if row is not None:
                values = {m: getattr(row, m) for m in MEASURES}
            for measure, value in values.items():
                if value is not None:
                    outcome = Outcome(forecast=value, actual=actuals.get(key, ZERO))
                    out.append(
                        Forecast(
                            period,
                            snapshot.snapshot_id,
                            snapshot.as_of,
                            snapshot.kind,
                            weeks,
                            *key,
                            measure,
                            outcome,
                        )
                    )
    return out


def summaries(items: Iterable[Forecast], *, by_week: bool) -> list[Summary]:
    """Per (group, currency, measure) over every forecast, and, `by_week`, per horizon too."""
    groups: dict[tuple[str | None, str | None, str, int | None], list[Forecast]] = defaultdict(list)
    for f in items:
        groups[(f.group, f.currency, f.measure, None)].append(f)
        if by_week:
            groups[(f.group, f.currency, f.measure, f.weeks_before_end)].append(f)
    ordered = sorted(
        groups,
        key=lambda k: (*row_order((k[0], k[1])), MEASURES.index(k[2]), k[3] is not None, k[3] or 0),
    )
    return [
        Summary(
            *key,
            periods=len({f.period for f in groups[key]}),
            accuracy=accuracy(f.outcome for f in groups[key]),
        )
        for key in ordered
    ]
