"""Deal inspection: each rule fires on its own case and says why; pushes are counted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.forecast_worker.inspection.rules import OpenDeal, Thresholds, inspect, pushes

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
MEDIANS = {"negotiate": Decimal(10)}


HEALTHY = OpenDeal(
    deal_id="D-1",
    stage="negotiate",
    entered_stage_at=NOW - timedelta(days=5),
    close_date=date(2026, 12, 15),
    close_dates=[date(2026, 12, 15)],
    missing_fields=[],
)


def deal(**changes: Any) -> OpenDeal:
    return replace(HEALTHY, **changes)


@pytest.mark.parametrize(
    ("changes", "rule", "reason"),
    [
        pytest.param(
            {"entered_stage_at": NOW - timedelta(days=21)},
            "stuck",
            "in stage 'negotiate' for 21.0 days, more than 2 x its median of 10 days",
            id="stuck",
        ),
        pytest.param(
            {
                "close_dates": [
                    date(2026, 10, 1),
                    date(2026, 11, 1),
                    date(2026, 10, 20),
                    date(2026, 12, 1),
                    date(2026, 12, 15),
                ]
            },
            "pushed",
            "close date pushed 3 times (more than 2)",
            id="pushed",
        ),
        pytest.param(
            {"missing_fields": ["amount", "close_date"]},
            "missing_fields",
            "stage 'negotiate' requires amount, close_date",
            id="missing fields",
        ),
        pytest.param(
            {"close_date": date(2026, 11, 29)},
            "past_close_date",
            "still open with close date 2026-11-29 in the past",
            id="past close date",
        ),
    ],
)
def test_each_rule_says_why(changes: dict[str, Any], rule: str, reason: str) -> None:
    findings = inspect(deal(**changes), now=NOW, median_days=MEDIANS, thresholds=Thresholds())
    assert [(f.rule, f.reason) for f in findings] == [(rule, reason)]


def test_a_healthy_deal_is_not_flagged() -> None:
    assert inspect(deal(), now=NOW, median_days=MEDIANS, thresholds=Thresholds()) == []


def test_a_stage_without_a_median_is_never_stuck() -> None:
    old = deal(stage="discovery", entered_stage_at=NOW - timedelta(days=400))
    assert inspect(old, now=NOW, median_days=MEDIANS, thresholds=Thresholds()) == []


@pytest.mark.parametrize(
    ("dates", "count"),
    [
        ([], 0),
        ([None, date(2026, 1, 1)], 0),
        ([date(2026, 1, 1), date(2026, 2, 1), date(2026, 2, 1)], 1),
        ([date(2026, 3, 1), date(2026, 2, 1), date(2026, 4, 1)], 1),
        ([date(2026, 1, 1), None, date(2026, 5, 1)], 0),
    ],
)
def test_pushes_count_only_moves_later(dates: list[date | None], count: int) -> None:
    assert pushes(dates) == count
