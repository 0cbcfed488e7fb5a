"""The envelope and the canonical event contract: `validate_event` and its reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.envelope import CloudEvent
from shared.events import (
    CANONICAL_TYPES,
    MAX_FUTURE,
    ActivityDeleted,
    ActivityLogged,
    DealCancelled,
    DealCreated,
    EventInFuture,
    EventRejected,
    validate_event,
)

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
DELETED = "com.salesops.deal.deleted.v1"
CANCELLED = "com.salesops.deal.cancelled.v1"
ACTIVITY = "com.salesops.activity.logged.v1"
ACTIVITY_DELETED = "com.salesops.activity.deleted.v1"
REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v1"
TEAM_V2 = "com.salesops.team.upserted.v2"
QUOTA = "com.salesops.quota.set.v1"
INVOICE = "com.salesops.invoice.paid.v1"

# type -> (valid data, expected topic, expected partition key / subject)
VALID: dict[str, tuple[dict[str, Any], str, str]] = {
    CREATED: (
        {
            "deal_id": "d-1",
            "name": "Big deal",
            "owner_id": "rep-1",
            "stage": "Discovery",
            "amount": "1200.50",
            "currency": "usd",
            "close_date": "2024-06-30",
            "splits": [{"rep_id": "rep-1", "percent": "60"}, {"rep_id": "rep-2", "percent": "40"}],
            "properties": {"source": "web"},
        },
        "crm.deal.v1",
        "d-1",
    ),
    UPDATED: ({"deal_id": "d-2", "stage": "Negotiation"}, "crm.deal.v1", "d-2"),
    DELETED: ({"deal_id": "d-3"}, "crm.deal.v1", "d-3"),
    CANCELLED: (
        {
            "deal_id": "d-5",
            "cancelled_at": "2024-01-01T09:00:00Z",
            "reason": "churned",
            "contract_end": "2024-12-31",
        },
        "crm.deal.v1",
        "d-5",
    ),
    ACTIVITY: (
        {
            "activity_id": "a-1",
            "kind": "call",
            "deal_id": "d-4",
            "account_id": "acc-1",
            "occurred_at": "2024-01-01T10:00:00Z",
        },
        "crm.activity.v1",
        "d-4",
    ),
    ACTIVITY_DELETED: ({"activity_id": "a-2"}, "crm.activity.v1", "a-2"),
    REP: ({"rep_id": "rep-9", "name": "Ann"}, "crm.reference.v1", "rep-9"),
    TEAM: ({"team_id": "team-1", "name": "East"}, "crm.reference.v1", "team-1"),
    TEAM_V2: (
        {"team_id": "team-2", "name": "West", "region": "EMEA", "manager_name": "Mia"},
        "crm.reference.v1",
        "team-2",
    ),
    QUOTA: (
        {
            "quota_id": "q-1",
            "rep_id": "rep-9",
            "period_start": "2024-01-01",
            "period_end": "2024-03-31",
            "amount": "100000",
            "currency": "EUR",
        },
        "crm.reference.v1",
        "q-1",
    ),
    INVOICE: (
        {
            "invoice_id": "inv-1",
            "deal_id": "d-1",
            "amount": "99.99",
            "currency": "GBP",
            "paid_at": "2024-02-01T00:00:00+00:00",
        },
        "crm.reference.v1",
        "inv-1",
    ),
}

SUBJECT_OF = {
    CREATED: "d-1",
    UPDATED: "d-2",
    DELETED: "d-3",
    CANCELLED: "d-5",
    ACTIVITY: "a-1",
    ACTIVITY_DELETED: "a-2",
    REP: "rep-9",
    TEAM: "team-1",
    TEAM_V2: "team-2",
    QUOTA: "q-1",
    INVOICE: "inv-1",
}


def raw_event(type_: str, data: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "test://unit",
        "type": type_,
        "time": "2024-01-01T12:00:00Z",
        "data": data,
    }
    ev.update(attrs)
    return ev


def rejection(raw: Any) -> str:
    with pytest.raises(EventRejected) as info:
        validate_event(raw)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_samples_cover_every_canonical_type() -> None:
    assert set(VALID) == set(CANONICAL_TYPES)


@pytest.mark.parametrize("type_", sorted(CANONICAL_TYPES))
def test_valid_event_of_every_type(type_: str) -> None:
    data, topic, key = VALID[type_]
    event = validate_event(raw_event(type_, data))
    assert event.topic == topic
    assert event.partition_key == key
    assert isinstance(event.payload, CANONICAL_TYPES[type_].model)
    assert event.envelope.type == type_
    assert event.subject == SUBJECT_OF[type_]
    assert event.envelope.time == datetime(2024, 1, 1, 12, tzinfo=UTC)


def test_created_payload_values_are_normalised() -> None:
    event = validate_event(raw_event(CREATED, VALID[CREATED][0]))
    payload = event.payload
    assert isinstance(payload, DealCreated)
    assert payload.amount == Decimal("1200.50")
    assert payload.currency == "USD"
    assert payload.changed_fields()["amount"] == "1200.50"
    assert "deal_id" not in payload.changed_fields()


@pytest.mark.parametrize(
    ("ids", "key"),
    [
        ({"deal_id": "d-7", "account_id": "acc-7"}, "d-7"),
        ({"deal_id": "d-7"}, "d-7"),
        ({"account_id": "acc-7"}, "acc-7"),
        ({}, "a-7"),
    ],
)
def test_activity_partition_key_prefers_deal_then_account_then_activity(
    ids: dict[str, str], key: str
) -> None:
    data = {"activity_id": "a-7", "kind": "email", "occurred_at": "2024-01-01T00:00:00Z", **ids}
    event = validate_event(raw_event(ACTIVITY, data))
    assert isinstance(event.payload, ActivityLogged)
    assert event.partition_key == key
    assert event.topic == "crm.activity.v1"
    assert event.subject == "a-7"


def test_cancellation_needs_when_and_why_and_may_name_the_term_end() -> None:
    event = validate_event(
        raw_event(
            CANCELLED, {"deal_id": "d-5", "cancelled_at": "2024-01-01T09:00:00Z", "reason": "x"}
        )
    )
    assert isinstance(event.payload, DealCancelled)
    assert event.payload.contract_end is None
    reason = rejection(raw_event(CANCELLED, {"deal_id": "d-5", "reason": ""}))
    assert "data.cancelled_at: Field required" in reason
    assert "data.reason: String should have at least 1 character" in reason


def test_activity_deleted_may_say_when_and_nothing_else() -> None:
    event = validate_event(
        raw_event(ACTIVITY_DELETED, {"activity_id": "a-8", "deleted_at": "2024-01-01T09:00:00Z"})
    )
    assert isinstance(event.payload, ActivityDeleted)
    assert event.payload.deleted_at == datetime(2024, 1, 1, 9, tzinfo=UTC)
    assert (event.topic, event.partition_key, event.subject) == ("crm.activity.v1", "a-8", "a-8")
    assert validate_event(raw_event(ACTIVITY_DELETED, {"activity_id": "a-8"})).payload == (
        ActivityDeleted(activity_id="a-8")
    )
    assert rejection(raw_event(ACTIVITY_DELETED, {})).startswith("data.activity_id:")
    assert rejection(
        raw_event(ACTIVITY_DELETED, {"activity_id": "a-8", "deal_id": "d-1"})
    ).startswith("data.deal_id:")
    subject = rejection(raw_event(ACTIVITY_DELETED, {"activity_id": "a-8"}, subject="a-9"))
    assert subject.startswith("subject:")


def test_naive_time_rejected() -> None:
    reason = rejection(raw_event(DELETED, {"deal_id": "d"}, time="2024-01-01T12:00:00"))
    assert reason.startswith("time:")
    assert "UTC offset" in reason


def test_offset_time_converted_to_utc() -> None:
    event = validate_event(raw_event(DELETED, {"deal_id": "d"}, time="2024-01-01T14:00:00+02:00"))
    assert event.envelope.time == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert event.envelope.time.utcoffset() is not None
    assert event.envelope.time.tzinfo == UTC


NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def at(when: datetime) -> dict[str, Any]:
    return raw_event(DELETED, {"deal_id": "d"}, time=when.isoformat())


def test_an_event_from_year_9000_is_rejected_saying_why() -> None:
    year_9000 = raw_event(DELETED, {"deal_id": "d"}, time="9000-01-01T00:00:00Z")
    with pytest.raises(EventInFuture) as refused:
        validate_event(year_9000, max_future=MAX_FUTURE)
    assert refused.value.reason.startswith("time: 9000-01-01T00:00:00+00:00 lies more than 300s")
    assert validate_event(year_9000).envelope.time.year == 9000, "stored events stay valid"


def test_the_default_skew_is_five_minutes() -> None:
    validate_event(at(NOW + timedelta(minutes=5)), now=NOW, max_future=MAX_FUTURE)
    with pytest.raises(EventInFuture):
        validate_event(at(NOW + timedelta(minutes=5, seconds=1)), now=NOW, max_future=MAX_FUTURE)


def test_the_skew_is_configurable() -> None:
    with pytest.raises(EventInFuture, match="more than 0s"):
        validate_event(at(NOW + timedelta(seconds=1)), now=NOW, max_future=timedelta(0))
    late = at(NOW + timedelta(hours=1))
    assert validate_event(late, now=NOW, max_future=timedelta(hours=2)).envelope.time > NOW


@pytest.mark.parametrize("sequence", [7, "7", "0007"])
def test_sequence_as_int_or_digit_string(sequence: int | str) -> None:
    event = validate_event(raw_event(DELETED, {"deal_id": "d"}, sequence=sequence))
    assert event.envelope.sequence == 7


@pytest.mark.parametrize("sequence", [-1, "abc", "1.5", 10**31])
def test_bad_sequence_rejected(sequence: int | str) -> None:
    reason = rejection(raw_event(DELETED, {"deal_id": "d"}, sequence=sequence))
    assert reason.startswith("sequence:")


def test_sequence_absent_is_none() -> None:
    assert validate_event(raw_event(DELETED, {"deal_id": "d"})).envelope.sequence is None


def test_unknown_type_rejected_naming_type() -> None:
    reason = rejection(raw_event("com.salesops.deal.exploded.v1", {"deal_id": "d"}))
    assert reason.startswith("type:")
    assert "com.salesops.deal.exploded.v1" in reason


def test_wrong_specversion_rejected() -> None:
    assert "specversion" in rejection(raw_event(DELETED, {"deal_id": "d"}, specversion="0.3"))


def test_missing_envelope_attribute_named() -> None:
    raw = raw_event(DELETED, {"deal_id": "d"})
    del raw["source"]
    assert rejection(raw).startswith("source:")


def test_subject_mismatch_rejected() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d-1", "name": "x"}, subject="d-2"))
    assert reason.startswith("subject:")
    assert "data.deal_id" in reason
    assert "'d-2'" in reason
    assert "'d-1'" in reason


def test_matching_subject_accepted() -> None:
    event = validate_event(raw_event(UPDATED, {"deal_id": "d-1", "name": "x"}, subject="d-1"))
    assert event.subject == "d-1"


def test_subject_filled_from_data_when_absent() -> None:
    raw = raw_event(UPDATED, {"deal_id": "d-42", "name": "x"})
    assert "subject" not in raw
    event = validate_event(raw)
    assert event.subject == "d-42"
    assert event.raw["subject"] == "d-42"


def test_unknown_data_field_rejected_with_location() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d", "amuont": "5"}))
    assert "data.amuont" in reason


def test_extension_attributes_kept() -> None:
    event = validate_event(raw_event(DELETED, {"deal_id": "d"}, crmtenant="acme"))
    assert event.envelope.model_extra == {"crmtenant": "acme"}
    assert event.raw["crmtenant"] == "acme"


def test_float_amount_rejected() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d", "amount": 12.5}))
    assert "data.amount" in reason
    assert "not a float" in reason


def test_non_numeric_amount_rejected() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d", "amount": "twelve"}))
    assert "data.amount" in reason


def test_bad_currency_rejected() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d", "currency": "dollars"}))
    assert "data.currency" in reason


def test_update_without_changed_field_rejected() -> None:
    reason = rejection(raw_event(UPDATED, {"deal_id": "d"}))
    assert reason.startswith("data:")
    assert "at least one changed field" in reason


def test_created_with_amount_but_no_currency_rejected() -> None:
    data = {"deal_id": "d", "name": "n", "owner_id": "o", "stage": "s", "amount": "10"}
    reason = rejection(raw_event(CREATED, data))
    assert reason.startswith("data:")
    assert "currency is required" in reason


def test_created_missing_deal_id_named() -> None:
    reason = rejection(raw_event(CREATED, {"name": "n", "stage": "s"}))
    assert "data.deal_id" in reason


def test_created_needs_nothing_but_its_id() -> None:
    event = validate_event(raw_event(CREATED, {"deal_id": "d"}))
    assert event.partition_key == "d"


def test_splits_over_100_percent_rejected() -> None:
    splits = [{"rep_id": "a", "percent": "60"}, {"rep_id": "b", "percent": "40.01"}]
    reason = rejection(raw_event(UPDATED, {"deal_id": "d", "splits": splits}))
    assert "more than 100 percent" in reason


def test_splits_of_exactly_100_percent_accepted() -> None:
    splits = [{"rep_id": "a", "percent": "33.34"}, {"rep_id": "b", "percent": "66.66"}]
    event = validate_event(raw_event(UPDATED, {"deal_id": "d", "splits": splits}))
    assert event.payload.model_dump()["splits"][0]["role"] == "owner"


def test_single_split_over_1000_names_its_location() -> None:
    reason = rejection(
        raw_event(UPDATED, {"deal_id": "d", "splits": [{"rep_id": "a", "percent": "1001"}]})
    )
    assert "data.splits.0.percent" in reason


def test_a_single_owner_split_over_100_is_rejected() -> None:
    reason = rejection(
        raw_event(UPDATED, {"deal_id": "d", "splits": [{"rep_id": "a", "percent": "101"}]})
    )
    assert "more than 100 percent" in reason


def test_overlay_splits_may_take_the_total_over_100_percent() -> None:
    """Salesforce opportunity splits: revenue splits total 100%, overlays any percentage."""
    splits = [
        {"rep_id": "a", "percent": "50", "role": "revenue"},
        {"rep_id": "b", "percent": "50", "role": "revenue"},
        {"rep_id": "a", "percent": "20", "role": "overlay"},
    ]
    event = validate_event(raw_event(UPDATED, {"deal_id": "d", "splits": splits}))
    assert [s["role"] for s in event.payload.model_dump()["splits"]] == [
        "revenue",
        "revenue",
        "overlay",
    ]


def test_quota_needs_exactly_one_owner() -> None:
    data = dict(VALID[QUOTA][0], team_id="team-1")
    assert "exactly one of rep_id or team_id" in rejection(raw_event(QUOTA, data))


def test_quota_period_end_before_start_rejected() -> None:
    data = dict(VALID[QUOTA][0], period_end="2023-12-31")
    assert "period_end is before period_start" in rejection(raw_event(QUOTA, data))


@pytest.mark.parametrize("item", [[1, 2], "text", 5, None])
def test_non_object_item_rejected(item: Any) -> None:
    reason = rejection(item)
    assert "must be a JSON object" in reason
    assert type(item).__name__ in reason


def test_data_must_be_object() -> None:
    raw = raw_event(DELETED, {})
    raw["data"] = ["d"]
    assert rejection(raw).startswith("data:")


def test_cloud_event_is_frozen() -> None:
    env = CloudEvent.model_validate(raw_event(DELETED, {"deal_id": "d"}))
    with pytest.raises(ValueError, match="frozen"):
        env.id = "other"  # type: ignore[misc]


def test_over_long_ids_are_rejected_so_a_filled_subject_always_fits() -> None:
    raw = raw_event(REP, {"rep_id": "r" * 300, "name": "Long id"})
    with pytest.raises(EventRejected, match=r"data\.rep_id"):
        validate_event(raw)


def test_stored_form_validates_again_to_the_same_event() -> None:
    first = validate_event(raw_event(REP, {"rep_id": "r" * 256, "name": "Longest id"}))
    again = validate_event(first.raw)
    assert again.subject == first.subject == "r" * 256
    assert again.payload == first.payload
    assert again.raw == first.raw


def test_a_naive_data_time_is_refused_at_intake_but_read_as_utc_from_the_log() -> None:
    data = {**VALID[ACTIVITY][0], "occurred_at": "2024-01-01T10:00:00"}
    with pytest.raises(EventRejected, match=r"data\.occurred_at: .*UTC offset"):
        validate_event(raw_event(ACTIVITY, data))
    stored = validate_event(raw_event(ACTIVITY, data), stored=True)
    assert isinstance(stored.payload, ActivityLogged)
    assert stored.payload.occurred_at == datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("type_", "data", "reason"),
    [
        (DELETED, {}, "data.deal_id"),
        ("com.salesops.nothing.v1", {"deal_id": "d"}, "type: unknown event type"),
    ],
)
def test_an_invalid_event_from_the_future_is_rejected_for_what_is_wrong_with_it(
    type_: str, data: dict[str, Any], reason: str
) -> None:
    """Not `EventInFuture`: a CRM change so refused would be parked as replayable, to wait
    for a time that cannot make it valid."""
    ahead = raw_event(type_, data, time="9000-01-01T00:00:00Z")
    with pytest.raises(EventRejected) as refused:
        validate_event(ahead, now=NOW, max_future=MAX_FUTURE)
    assert not isinstance(refused.value, EventInFuture)
    assert refused.value.reason.startswith(reason)
