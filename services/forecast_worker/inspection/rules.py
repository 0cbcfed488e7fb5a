"""Which open deals an inspection flags, and why: pure, no I/O.

Four rules, each giving a reason a person can act on:
- **stuck**: in its current stage longer than `stuck_factor` x that stage's median days in
  stage (the median from the metrics over history; a stage without a median flags nothing);
- **pushed**: its close date moved later more than `max_pushes` times (pull-ins do not
  count, and neither does a close date set for the first time);
- **missing fields**: its stage requires fields (the configuration's exit criteria) that
  the deal has no value for;
- **past close date**: still open with a close date before today.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise


@dataclass(frozen=True)
class Thresholds:
    stuck_factor: Decimal = Decimal(2)
    max_pushes: int = 2


@dataclass(frozen=True)
class OpenDeal:
    deal_id: str
    stage: str | None
    entered_stage_at: datetime
    close_date: date | None
    close_dates: Sequence[date | None]
    """Every close date the deal had, oldest first (one per version)."""
    missing_fields: Sequence[str]
    """The fields its stage requires that it has no value for."""


@dataclass(frozen=True)
class Finding:
    deal_id: str
    rule: str
    reason: str


def pushes(close_dates: Iterable[date | None]) -> int:
    """How many times a close date moved later (None to a date is not a push)."""
    return sum(1 for a, b in pairwise(close_dates) if a is not None and b is not None and b > a)


def inspect(
    deal: OpenDeal,
    *,
    now: datetime,
    median_days: Mapping[str, Decimal],
    thresholds: Thresholds,
) -> list[Finding]:
    """The rules `deal` breaks. `median_days` is keyed by lower-case stage name, so a deal
    in `PROPOSE` is timed against the median of every spelling of `Propose`."""
    out: list[Finding] = []
    days = Decimal((now - deal.entered_stage_at).total_seconds()) / 86400
    median = median_days.get((deal.stage or "").lower())
    if median is not None and median > 0 and days > thresholds.stuck_factor * median:
        out.append(
            Finding(
                deal.deal_id,
                "stuck",
                f"in stage {deal.stage!r} for {days:.1f} days, more than "
                f"{thresholds.stuck_factor} x its median of {median} days",
            )
        )
    count = pushes(deal.close_dates)
    if count > thresholds.max_pushes:
        out.append(
            Finding(
                deal.deal_id,
                "pushed",
                f"close date pushed {count} times (more than {thresholds.max_pushes})",
            )
        )
    if deal.missing_fields:
        out.append(
            Finding(
                deal.deal_id,
                "missing_fields",
                f"stage {deal.stage!r} requires {', '.join(deal.missing_fields)}",
            )
        )
    if deal.close_date is not None and deal.close_date < now.date():
        out.append(
            Finding(
                deal.deal_id,
                "past_close_date",
                f"still open with close date {deal.close_date.isoformat()} in the past",
            )
        )
    return out
