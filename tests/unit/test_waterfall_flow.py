"""The waterfall's buckets: each case named, and the balance equation for any history."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.forecast_worker.waterfall.flow import (
    Bucket,
    DealPoint,
    Movement,
    Waterfall,
    Window,
    group_movements,
    movements,
    pipeline_amount,
)

Q4 = Window(date(2026, 10, 1), date(2027, 1, 1))
IN_Q4 = date(2026, 11, 15)
AFTER_Q4 = date(2027, 2, 1)
BEFORE_Q4 = date(2026, 9, 1)
D = Decimal


def open_(amount: str, close: date | None = IN_Q4) -> DealPoint:
    return DealPoint("open", close, D(amount))


def won(amount: str, close: date = IN_Q4) -> DealPoint:
    return DealPoint("won", close, D(amount))


def lost(amount: str, close: date = IN_Q4) -> DealPoint:
    return DealPoint("lost", close, D(amount))


def deleted(amount: str) -> DealPoint:
    return DealPoint("open", IN_Q4, D(amount), deleted=True)


CASES = [
    ("unchanged", open_("100"), open_("100"), []),
    ("increased", open_("100"), open_("150"), [(Bucket.INCREASED, "50")]),
    ("decreased", open_("100"), open_("60"), [(Bucket.DECREASED, "40")]),
    ("created", None, open_("80"), [(Bucket.CREATED, "80")]),
    (
        "pulled in from a later period",
        open_("80", AFTER_Q4),
        open_("80"),
        [(Bucket.PULLED_IN, "80")],
    ),
    ("pulled in and resized", open_("80", AFTER_Q4), open_("90"), [(Bucket.PULLED_IN, "90")]),
    ("reopened", lost("70"), open_("70"), [(Bucket.PULLED_IN, "70")]),
    ("pushed out", open_("100"), open_("100", AFTER_Q4), [(Bucket.PUSHED_OUT, "100")]),
    ("close date cleared", open_("100"), open_("100", None), [(Bucket.PUSHED_OUT, "100")]),
    (
        "pushed out and shrunk",
        open_("100"),
        open_("70", AFTER_Q4),
        [(Bucket.DECREASED, "30"), (Bucket.PUSHED_OUT, "70")],
    ),
    ("won", open_("100"), won("100"), [(Bucket.WON, "100")]),
    ("won bigger", open_("100"), won("120"), [(Bucket.INCREASED, "20"), (Bucket.WON, "120")]),
    ("lost", open_("100"), lost("100"), [(Bucket.LOST, "100")]),
    ("deleted", open_("100"), deleted("100"), [(Bucket.LOST, "100")]),
    (
        "created and won inside the window",
        None,
        won("50"),
        [(Bucket.CREATED, "50"), (Bucket.WON, "50")],
    ),
    (
        "pulled in and lost inside the window",
        open_("50", AFTER_Q4),
        lost("50"),
        [(Bucket.PULLED_IN, "50"), (Bucket.LOST, "50")],
    ),
    ("won before the window", won("100"), won("100"), []),
    ("won before the window, amount corrected", won("100"), won("90"), []),
    ("in another period throughout", open_("100", AFTER_Q4), open_("200", AFTER_Q4), []),
    ("won in another period", open_("100", BEFORE_Q4), won("100", BEFORE_Q4), []),
    ("created in another period", None, open_("10", AFTER_Q4), []),
]


@pytest.mark.parametrize(
    ("before", "after", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_deal_falls_into_its_buckets(
    before: DealPoint | None, after: DealPoint | None, expected: list[tuple[Bucket, str]]
) -> None:
    assert movements(before, after, Q4) == [Movement(b, D(a)) for b, a in expected]


def test_a_deal_moved_to_another_team_leaves_one_and_enters_the_other() -> None:
    out = group_movements(open_("100"), open_("120"), Q4, group_before="a", group_after="b")
    assert out == [
        ("a", Movement(Bucket.MOVED_OUT, D(100))),
        ("b", Movement(Bucket.MOVED_IN, D(120))),
    ]


def test_a_deal_moved_and_won_is_won_in_its_new_team() -> None:
    out = group_movements(open_("100"), won("130"), Q4, group_before="a", group_after="b")
    assert out == [
        ("a", Movement(Bucket.MOVED_OUT, D(100))),
        ("b", Movement(Bucket.MOVED_IN, D(130))),
        ("b", Movement(Bucket.WON, D(130))),
    ]


amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False)
closes = st.one_of(
    st.none(),
    st.dates(min_value=date(2026, 7, 1), max_value=date(2027, 3, 31)),
)
points = st.builds(
    DealPoint,
    status=st.sampled_from(["open", "won", "lost"]),
    close_date=closes,
    amount=amounts,
    deleted=st.booleans(),
)
maybe_points = st.one_of(st.none(), points)
groups = st.sampled_from([None, "east", "west", "central"])


def _deal_states() -> st.SearchStrategy[tuple[DealPoint | None, DealPoint]]:
    """A deal at `from` (None: not created yet) and at `to` (it exists by then)."""
    return st.tuples(maybe_points, points)


@given(st.lists(_deal_states(), max_size=40))
def test_the_waterfall_balances_for_any_set_of_deals(
    deals: list[tuple[DealPoint | None, DealPoint]],
) -> None:
    fall = Waterfall(start=pipeline_amount((b for b, _ in deals), Q4))
    for before, after in deals:
        for movement in movements(before, after, Q4):
            assert movement.amount >= 0
            fall.add(movement)
    assert fall.end == pipeline_amount((a for _, a in deals), Q4)


@given(st.lists(st.tuples(_deal_states(), groups, groups), max_size=40))
def test_each_group_balances_when_deals_change_groups(
    deals: list[tuple[tuple[DealPoint | None, DealPoint], str | None, str | None]],
) -> None:
    starts: dict[str | None, list[DealPoint | None]] = defaultdict(list)
    ends: dict[str | None, list[DealPoint | None]] = defaultdict(list)
    falls: dict[str | None, list[Movement]] = defaultdict(list)
    for (before, after), g0, g1 in deals:
        starts[g0].append(before)
        ends[g1].append(after)
        for group, movement in group_movements(before, after, Q4, group_before=g0, group_after=g1):
            falls[group].append(movement)
    for group in {*starts, *ends, *falls}:
        fall = Waterfall(start=pipeline_amount(starts[group], Q4))
        for movement in falls[group]:
            fall.add(movement)
        assert fall.end == pipeline_amount(ends[group], Q4), group


in_q4 = st.dates(min_value=Q4.start, max_value=Q4.end - timedelta(days=1))


@given(st.sampled_from(["open", "won", "lost"]), in_q4, in_q4, amounts)
def test_a_close_date_moved_within_the_period_changes_nothing(
    status: str, first: date, second: date, amount: Decimal
) -> None:
    """Moving a close date inside P is neither a push nor a pull: P's pipeline is the same."""
    assert movements(DealPoint(status, first, amount), DealPoint(status, second, amount), Q4) == []
