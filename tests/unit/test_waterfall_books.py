"""Waterfall rows from candidates: one row per group and currency, each balancing against
the pipeline measured at `to`, whatever the deals did between the instants."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.waterfall import books
from services.forecast_worker.waterfall.flow import Bucket, DealPoint, Window, in_pipeline
from services.forecast_worker.waterfall.repository import Candidate, Side

Q4 = Window(date(2026, 10, 1), date(2027, 1, 1))
D = Decimal


def side(amount: str, *, group: str | None = "east", currency: str = "EUR") -> Side:
    return Side(DealPoint("open", date(2026, 11, 1), D(amount)), currency, group)


def buckets(table: dict[books.Key, books.Waterfall]) -> dict[books.Key, dict[Bucket, Decimal]]:
    return {k: {b: a for b, a in w.buckets.items() if a} for k, w in table.items()}


def test_a_new_deal_is_created_in_its_group_not_moved_in() -> None:
    table = books.rows([Candidate("d1", None, side("100", group="west"))], Q4)
    assert buckets(table) == {("west", "EUR"): {Bucket.CREATED: D(100)}}


def test_a_currency_change_moves_the_deal_between_rows_never_mixing_sums() -> None:
    table = books.rows([Candidate("d1", side("100"), side("90", currency="USD"))], Q4)
    assert buckets(table) == {
        ("east", "EUR"): {Bucket.MOVED_OUT: D(100)},
        ("east", "USD"): {Bucket.MOVED_IN: D(90)},
    }
    assert (table[("east", "EUR")].end, table[("east", "USD")].end) == (D(0), D(90))


def test_rows_come_by_group_then_currency_with_missing_ones_last() -> None:
    candidates = [
        Candidate("a", None, side("1", group=None)),
        Candidate("b", None, side("1", group="west", currency="USD")),
        Candidate("c", None, side("1", group="west")),
        Candidate("d", None, side("1")),
    ]
    keys = [k for k, _ in books.ordered(books.rows(candidates, Q4))]
    assert keys == [("east", "EUR"), ("west", "EUR"), ("west", "USD"), (None, "EUR")]


points = st.builds(
    DealPoint,
    status=st.sampled_from(["open", "won", "lost"]),
    close_date=st.one_of(st.none(), st.dates(date(2026, 8, 1), date(2027, 2, 28))),
    amount=st.decimals(min_value=0, max_value=10**6, places=2),
    deleted=st.booleans(),
)
sides = st.builds(
    Side, points, st.sampled_from(["EUR", "USD"]), st.sampled_from([None, "east", "west"])
)


@given(st.lists(st.tuples(st.one_of(st.none(), sides), sides), max_size=30))
def test_every_row_ends_at_the_pipeline_measured_at_to(
    states: list[tuple[Side | None, Side]],
) -> None:
    candidates = [Candidate(f"d{n}", b, a) for n, (b, a) in enumerate(states)]
    measured: dict[books.Key, Decimal] = defaultdict(Decimal)
    for _, after in states:
        if in_pipeline(after.point, Q4):
            measured[(after.group, after.currency)] += after.point.amount
    table = books.rows(candidates, Q4)
    assert {k: w.end for k, w in table.items() if w.end} == {k: a for k, a in measured.items() if a}
    assert all(e.movement.amount >= 0 for e in books.entries(candidates, Q4))
