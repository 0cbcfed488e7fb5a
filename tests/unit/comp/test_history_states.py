"""The fold builds its states through the classes' slots, not their constructors: what it
builds must be what the constructors would, frozen, and `replace`-able as the bookings do."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.comp_engine.calc.bookings import Cancellation, DealState, SplitShare
from services.comp_engine.deals.history import (
    CANCELLED,
    DELETED,
    StageNames,
    StoredChange,
    history_of_one,
    states,
    stored,
)
from shared.ordering import OrderKey

NAMES = StageNames.of(["won"], ["lost"])
WON_AT = datetime(2027, 1, 5, 12, tzinfo=UTC)
CANCELLED_AT = datetime(2027, 2, 10, 12, tzinfo=UTC)
FIELDS = {
    "owner_id": "r1",
    "amount": "10000.50",
    "currency": "USD",
    "stage": "won",
    "close_date": "2027-01-05",
    "deal_type": "new",
    "pipeline": "main",
    "splits": [{"rep_id": "r1", "percent": "60"}, {"rep_id": "r2", "percent": "40", "role": "se"}],
    "properties": {"region": "emea"},
}


def test_a_folded_state_is_the_one_the_constructors_build() -> None:
    cancel = {"cancelled_at": CANCELLED_AT.isoformat(), "reason": "churn", "contract_end": None}
    found = states(
        [
            StoredChange(OrderKey(CANCELLED_AT, 0, "t", "e2"), CANCELLED, cancel),
            StoredChange(OrderKey(WON_AT, 0, "t", "e1"), "com.salesops.deal.created.v1", FIELDS),
        ],
        NAMES,
    )
    first = DealState(
        at=WON_AT,
        event_id="e1",
        status="won",
        amount=Decimal("10000.50"),
        currency="USD",
        owner_id="r1",
        splits=(SplitShare("r1", Decimal(60), "owner"), SplitShare("r2", Decimal(40), "se")),
        close_date=date(2027, 1, 5),
        deal_type="new",
        pipeline="main",
        properties={"region": "emea"},
    )
    second = dataclasses.replace(
        first,
        at=CANCELLED_AT,
        event_id="e2",
        cancelled=True,
        cancellation=Cancellation("e2", CANCELLED_AT, "churn", None),
    )
    assert found == [first, second]
    assert [repr(s) for s in found] == [repr(first), repr(second)]
    assert dataclasses.replace(found[0], amount=Decimal(1)).amount == Decimal(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].amount = Decimal(1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].splits[0].percent = Decimal(1)  # type: ignore[misc]


def test_a_stored_change_is_the_one_the_constructors_build() -> None:
    built = stored(WON_AT, 3, "t", "e1", "com.salesops.deal.created.v1", FIELDS)
    expected = StoredChange(OrderKey(WON_AT, 3, "t", "e1"), "com.salesops.deal.created.v1", FIELDS)
    assert built == expected
    assert repr(built) == repr(expected)
    assert type(built.key) is OrderKey
    assert built.key.sequence == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.event_type = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("event_type", "fields"),
    [
        ("com.salesops.deal.created.v1", FIELDS),
        ("com.salesops.deal.updated.v1", {"stage": "lost"}),
        ("com.salesops.deal.updated.v1", {"stage": "won", "status": "open"}),
        ("com.salesops.deal.updated.v1", {"properties": {"cancelled_at": "2027-02-01"}}),
        ("com.salesops.deal.updated.v1", {}),
        (DELETED, {}),
        (CANCELLED, {"cancelled_at": CANCELLED_AT.isoformat(), "reason": "churn"}),
    ],
)
def test_a_deal_of_one_change_folds_as_the_general_fold_does(
    event_type: str, fields: dict[str, object]
) -> None:
    found = history_of_one(WON_AT, "7", "t", "e1", event_type, fields, NAMES)
    expected = states([stored(WON_AT, 7, "t", "e1", event_type, fields)], NAMES)
    assert found == expected
    assert [repr(s) for s in found] == [repr(s) for s in expected]
