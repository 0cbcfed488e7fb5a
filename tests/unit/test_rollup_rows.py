"""Roll-up rows: calls and adjustments land beside the right group's numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from services.forecast_worker.calls.models import Adjustment, Call
from services.forecast_worker.rollup.figures import GroupSums
from services.forecast_worker.rollup.repository import GroupRow
from services.forecast_worker.rollup.rows import rollup_rows
from services.forecast_worker.rollup.schemas import CSV_COLUMNS

AT = datetime(2026, 11, 1, tzinfo=UTC)


def call(rep: str, currency: str = "USD", **amounts: Any) -> Call:
    return Call(rep_id=rep, currency=currency, author="Ana", recorded_at=AT, **amounts)


def adjustment(kind: str, target: str, category: str, amount: str) -> Adjustment:
    return Adjustment(
        target_kind=kind, target_id=target, category=category, amount=D(amount), currency="USD"
    )


SUMS = [
    GroupRow("ana", "USD", GroupSums(closed_won=D(50), commit=D(100), quota=D(200))),
    GroupRow("ana", "EUR", GroupSums(pipeline=D(7))),
    GroupRow(None, "USD", GroupSums(pipeline=D(1))),
]


def test_a_call_sits_on_its_rep_row_in_its_currency() -> None:
    rows = rollup_rows("rep", SUMS, {"ana": call("ana", commit=D(120))}, {})
    eur, usd, null = rows
    assert (usd.group, usd.currency, usd.call_commit, usd.call_author) == (
        "ana",
        "USD",
        D(120),
        "Ana",
    )
    assert (usd.attainment, usd.gap_to_quota, usd.coverage) == (D("0.25"), D(150), D("1.5"))
    assert eur.call_commit is None
    assert (eur.group, eur.currency) == ("ana", "EUR"), "by group, then currency"
    assert null.group is None, "the unassigned group comes last"


def test_a_call_without_numbers_still_gets_a_row_of_zeros() -> None:
    (row,) = rollup_rows("rep", [], {"bo": call("bo", best_case=D(9))}, {})
    assert (row.group, row.best_case, row.call_best_case, row.quota) == ("bo", D(0), D(9), None)


def test_adjustments_go_to_their_kind_of_group_only() -> None:
    adjustments = {
        ("team", "east", "commit"): adjustment("team", "east", "commit", "600"),
        ("rep", "ana", "pipeline"): adjustment("rep", "ana", "pipeline", "5"),
    }
    (team,) = rollup_rows("team", [], {"ana": call("ana", commit=D(1))}, adjustments)
    assert (team.group, team.adjustment_commit, team.call_commit) == ("east", D(600), None)
    assert rollup_rows("manager", [], {"ana": call("ana", commit=D(1))}, adjustments) == []
    rep_rows = rollup_rows("rep", SUMS, {}, adjustments)
    assert (rep_rows[1].currency, rep_rows[1].adjustment_pipeline) == ("USD", D(5))


def test_the_csv_columns_are_stable() -> None:
    assert CSV_COLUMNS[:17] == (
        "group", "currency", "closed_won", "commit", "best_case", "pipeline", "omitted",
        "commit_plus_closed", "best_case_plus_commit_plus_closed", "weighted", "open_count",
        "unmapped", "unmapped_count", "quota", "attainment", "gap_to_quota", "coverage",
    )  # fmt: skip
    assert all(c.startswith(("call_", "adjustment_")) for c in CSV_COLUMNS[17:])
