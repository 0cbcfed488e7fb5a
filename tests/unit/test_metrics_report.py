"""Metrics rows from repository rows: which groups appear, in which order, with what."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from services.forecast_worker.metrics.repository import GroupCount
from tests.support.metrics_reference import ClosedRow, metrics_rows, stage_order

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _closed(deal_id: str, group: str | None, *, won: bool, amount: str = "10") -> ClosedRow:
    return ClosedRow(deal_id, group, "USD", won, Decimal(amount), T0, date(2026, 1, 11))


def test_without_a_configuration_stages_come_in_the_order_first_seen() -> None:
    paths = {"b": [("Demo", T0), ("Won", T0)], "a": [("Lead", T0), ("Demo", T0)]}
    assert stage_order([], paths) == ["Lead", "Demo", "Won"]
    assert stage_order(["Won", "Lead"], paths) == ["Won", "Lead"]


def test_groups_with_closed_or_created_deals_appear_sorted_with_no_group_last() -> None:
    rows = metrics_rows(
        [_closed("1", "west", won=True), _closed("2", None, won=False)],
        {"1": [("Lead", T0), ("Won", datetime(2026, 1, 3, tzinfo=UTC))]},
        ["Lead", "Won"],
        [GroupCount("west", "USD", 4, Decimal(40)), GroupCount("north", "USD", 2, Decimal(5))],
        [GroupCount("east", "USD", 3, Decimal("7.5"))],
    )
    assert [(r.group, r.currency) for r in rows] == [
        ("east", "USD"),
        ("west", "USD"),
        (None, "USD"),
    ]
    east, west, nobody = rows
    assert (east.won_count, east.open_count, east.created_count, east.created_amount) == (
        0,
        0,
        3,
        Decimal("7.5"),
    )
    assert east.win_rate is None
    assert east.velocity is None
    assert (west.won_count, west.win_rate, west.open_count) == (1, Decimal("1.0000"), 4)
    assert west.velocity == Decimal("4.00")  # 4 open x 10 x 1 / 10 days
    assert [(s.stage, s.entered, s.median_days) for s in west.stages] == [
        ("Lead", 1, Decimal("2.00")),
        ("Won", 1, None),
    ]
    assert (nobody.lost_count, nobody.win_rate, nobody.created_count) == (1, Decimal(0), 0)
    assert [s.entered for s in nobody.stages] == [0, 0]


def test_nothing_closed_or_created_is_no_rows_even_with_open_deals() -> None:
    assert metrics_rows([], {}, [], [GroupCount(None, "USD", 9, Decimal(90))], []) == []
