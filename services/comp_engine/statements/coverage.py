"""What a period close does not lock. Pure.

A close locks exactly the period it names: closing '2026-Q1' freezes the lines of plans
paid by the quarter, not those of a plan paid by the month, whose lines are in '2026-01' to
'2026-03' (nor a fiscal year's). Rather than guess across lengths (a month's close cannot
freeze half of a quarter), the close says which periods of the other lengths in force over
it stay open, so the admin closes them too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from shared.periods import Period, PeriodKind, periods_between


def not_covered(period: Period, lengths: Iterable[str]) -> list[str]:
    """The periods of each other length in `lengths` overlapping `period`, by start."""
    found: list[Period] = []
    last_day = period.end - timedelta(days=1)
    for length in sorted(set(lengths) - {period.kind.value}):
        found += periods_between(
            period.start, last_day, PeriodKind(length), period.fiscal_start_month
        )
    return [p.label for p in sorted(found, key=lambda p: (p.start, p.end))]
