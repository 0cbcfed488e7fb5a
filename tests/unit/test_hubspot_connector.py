"""HubSpot payloads -> changes -> canonical events.

Fixture shapes: tests/fixtures/hubspot/deal_creation_batch.json follows the creation
batches in ../shared/reference/crm-webhooks.md (deal.creation plus one propertyChange per
property at one occurredAt; `changeFlag`/`sourceId` as in newer deliveries); the
propertyChange with a UUID dealstage is BureauxLocaux/dj-hubspot tests/test_events.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.pipeline_api.connectors import hubspot
from services.pipeline_api.connectors.changes import (
    ActivityChange,
    DealChange,
    ResyncRequest,
    Unsupported,
    from_json,
    to_json,
)
from services.pipeline_api.connectors.mapping import Parked, map_activity, map_deal
from services.pipeline_api.sources import Mapping, SourceIn, StageMapping
from shared.events import validate_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hubspot"
STAGE = "1f4f1ec1-8174-49f3-a112-4eaa4748e38e"
DJ_HUBSPOT_EVENT = {
    "objectId": 697680835,
    "propertyName": "dealstage",
    "propertyValue": STAGE,
    "changeSource": "CRM_UI",
    "eventId": 802835955,
    "subscriptionId": 92894,
    "portalId": 5799819,
    "appId": 186886,
    "occurredAt": 1556094637139,
    "subscriptionType": "deal.propertyChange",
    "attemptNumber": 0,
}


def source(**mapping: Any) -> SourceIn:
    return SourceIn(id="hs", kind="hubspot", account_id="48975575", mapping=Mapping(**mapping))


MAPPED = source(
    stages={STAGE: StageMapping(stage="discovery", pipeline="sales")},
    owners={"75761595": "rep-ana"},
    default_currency="EUR",
)


def creation_batch() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / "deal_creation_batch.json").read_text())
    return data


def test_creation_batch_gives_a_created_change_and_one_change_per_property() -> None:
    changes = hubspot.parse(creation_batch())
    deals = [c for c in changes if isinstance(c, DealChange)]
    assert [c.op for c in deals] == ["created"] + ["updated"] * 6
    assert len({c.occurred_at for c in deals}) == 1
    merged: dict[str, Any] = {}
    for c in deals:
        merged.update(c.fields)
    assert merged == {
        "name": "Acme - 40 seats",
        "stage": STAGE,
        "amount": "2000",
        "created_at": "2026-06-25T07:19:31.992000+00:00",
        "pipeline": "default",
        "owner_id": "75761595",
    }
    assert len({c.event_key for c in deals}) == 7


def test_mapped_creation_becomes_valid_canonical_events() -> None:
    events = [
        map_deal(MAPPED, c) for c in hubspot.parse(creation_batch()) if isinstance(c, DealChange)
    ]
    assert not [e for e in events if isinstance(e, Parked)]
    canon = [validate_event(e) for e in events if isinstance(e, dict)]
    assert {e.partition_key for e in canon} == {"hubspot:48975575:332507367156"}
    stage_event = next(e for e in canon if "stage" in e.raw["data"])
    assert stage_event.raw["data"] == {
        "deal_id": "hubspot:48975575:332507367156",
        "stage": "discovery",
        "pipeline": "sales",
    }
    amount_event = next(e for e in canon if "amount" in e.raw["data"])
    assert amount_event.raw["data"]["currency"] == "EUR"
    owner_event = next(e for e in canon if "owner_id" in e.raw["data"])
    assert owner_event.raw["data"]["owner_id"] == "rep-ana"
    assert canon[0].envelope.source == "crm://hubspot/48975575"


def test_unmapped_stage_and_owner_are_parked_with_the_reason() -> None:
    changes = [c for c in hubspot.parse(creation_batch()) if isinstance(c, DealChange)]
    bare = source()
    reasons = {r.reason for c in changes if isinstance(r := map_deal(bare, c), Parked)}
    assert any(f"stage {STAGE!r} is not mapped" in r for r in reasons)
    assert any("owner '75761595' is not mapped" in r for r in reasons)


def test_parked_change_round_trips_for_replay() -> None:
    change = next(
        c
        for c in hubspot.parse(creation_batch())
        if isinstance(c, DealChange) and "stage" in c.fields
    )
    again = from_json(json.loads(json.dumps(to_json(change))))
    assert again == change
    assert map_deal(MAPPED, again) == map_deal(MAPPED, change)


def test_dedupe_key_ignores_attempt_number_but_separates_properties() -> None:
    first = dict(DJ_HUBSPOT_EVENT)
    retry = {**first, "attemptNumber": 3}
    same_event_id_other_property = {**first, "propertyName": "amount", "propertyValue": "5"}
    keys = [
        c.event_key
        for c in hubspot.parse([first, retry, same_event_id_other_property])
        if isinstance(c, DealChange)
    ]
    assert keys[0] == keys[1]
    assert keys[2] != keys[0]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("amount", "1,250.50", ("amount", "1250.50")),
        ("amount", "", ("amount", None)),
        ("closedate", "1782371971992", ("close_date", "2026-06-25")),
        ("closedate", "2026-12-31T00:00:00Z", ("close_date", "2026-12-31")),
        ("hs_forecast_category", "BEST_CASE", ("forecast_category", "best_case")),
        ("dealtype", "newbusiness", ("deal_type", "newbusiness")),
        ("my_custom_field", "x", None),
    ],
)
def test_property_values_arrive_as_strings_and_are_parsed(
    name: str, value: str, expected: tuple[str, Any] | None
) -> None:
    assert hubspot.property_field(name, value) == expected


def test_custom_properties_kept_only_when_listed() -> None:
    change = hubspot.parse(
        [{**DJ_HUBSPOT_EVENT, "portalId": 48975575, "propertyName": "seats", "propertyValue": "40"}]
    )[0]
    assert isinstance(change, DealChange)
    assert isinstance(map_deal(source(), change), Parked)
    kept = map_deal(source(keep_properties=["seats"]), change)
    assert isinstance(kept, dict)
    assert kept["data"]["properties"] == {"seats": "40"}


def test_deletion_restore_and_merge_change_identity() -> None:
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "attemptNumber": 0,
        "occurredAt": 1700000000000,
        "changeSource": "CRM_UI",
    }
    deleted, restored, resync = hubspot.parse(
        [
            {**base, "eventId": 1, "subscriptionType": "deal.deletion", "objectId": 10},
            {**base, "eventId": 2, "subscriptionType": "deal.restore", "objectId": 11},
        ]
    )
    assert isinstance(deleted, DealChange)
    assert deleted.op == "deleted"
    assert isinstance(restored, DealChange)
    assert restored.op == "restored"
    assert resync == ResyncRequest("HubSpot restored the deal", ("11",))
    merge = hubspot.parse(
        [
            {
                **base,
                "eventId": 3,
                "subscriptionType": "deal.merge",
                "objectId": 20,
                "primaryObjectId": 20,
                "mergedObjectIds": [21, 22],
                "newObjectId": 23,
                "numberOfPropertiesMoved": 4,
            }
        ]
    )
    gone = [c for c in merge if isinstance(c, DealChange) and c.op == "deleted"]
    assert sorted(c.crm_id for c in gone) == ["20", "21", "22"]
    assert {c.merged_into for c in gone} == {"23"}
    survivor = next(c for c in merge if isinstance(c, DealChange) and c.op == "restored")
    assert survivor.crm_id == "23"
    assert ResyncRequest("HubSpot merged deals", ("23",)) in merge
    mapped = map_deal(source(), gone[0])
    assert isinstance(mapped, dict)
    assert mapped["type"] == "com.salesops.deal.deleted.v1"
    assert mapped["data"]["merged_into"] == "hubspot:48975575:23"
    assert validate_event(mapped).payload.model_dump()["merged_into"] == "hubspot:48975575:23"


def test_company_association_sets_and_clears_the_account() -> None:
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 5,
        "occurredAt": 1700000000000,
        "subscriptionType": "deal.associationChange",
        "associationType": "DEAL_TO_COMPANY",
        "fromObjectId": 30,
        "toObjectId": 77,
        "isPrimaryAssociation": True,
        "objectId": 30,
    }
    added, removed = hubspot.parse(
        [{**base, "associationRemoved": False}, {**base, "eventId": 6, "associationRemoved": True}]
    )
    assert isinstance(added, DealChange)
    assert added.fields == {"account_id": "77"}
    assert isinstance(removed, DealChange)
    assert removed.fields == {"account_id": None}
    mapped = map_deal(source(), removed)
    assert isinstance(mapped, dict)
    assert mapped["data"]["account_id"] is None


def test_generic_object_forms_engagements_and_unhandled_types() -> None:
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 7,
        "occurredAt": 1700000000000,
        "objectId": 40,
    }
    deal, call, fetch, contact = hubspot.parse(
        [
            {
                **base,
                "subscriptionType": "object.propertyChange",
                "objectTypeId": "0-3",
                "propertyName": "dealname",
                "propertyValue": "Renamed",
            },
            {**base, "subscriptionType": "object.creation", "objectTypeId": "0-48"},
            {**base, "subscriptionType": "contact.creation"},
        ]
    )
    assert isinstance(deal, DealChange)
    assert deal.fields == {"name": "Renamed"}
    assert isinstance(call, ActivityChange)
    assert call.kind == "call"
    assert call.deal_crm_id is None, "the payload does not say which deal"
    assert fetch == ResyncRequest(
        "HubSpot engagement: fetch its deal and owner", ("40",), activity_kind="call"
    )
    assert isinstance(contact, Unsupported)
    assert "not handled" in contact.reason


def test_engagement_deletion_is_an_activity_deletion() -> None:
    # Shape: the generic object form HubSpot uses for engagements (`object.deletion` with
    # `objectTypeId`; 0-47 is meetings), keyed like every other HubSpot event.
    item = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 8,
        "attemptNumber": 0,
        "occurredAt": 1700000060000,
        "subscriptionType": "object.deletion",
        "objectTypeId": "0-47",
        "objectId": 41,
        "changeFlag": "DELETED",
    }
    (change,) = hubspot.parse([item])
    assert change == ActivityChange(
        crm_id="41",
        event_key="hs:48975575:9:8:41:-:1700000060000",
        occurred_at=datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC),
        kind="meeting",
        op="deleted",
    )
    assert hubspot.parse([{**item, "attemptNumber": 1}]) == [change], "a retry dedupes"
    event = map_activity(MAPPED, change)
    assert isinstance(event, dict)
    validated = validate_event(event)
    assert validated.envelope.type == "com.salesops.activity.deleted.v1"
    assert validated.subject == "hubspot:48975575:41"


@pytest.mark.parametrize("body", [{}, [], [{"no": "portal"}], "x"])
def test_malformed_bodies_are_rejected(body: Any) -> None:
    with pytest.raises(hubspot.HubSpotError):
        hubspot.parse(body)


def test_amount_only_change_keeps_currency_in_multi_currency_accounts() -> None:
    change = DealChange(
        crm_id="1", event_key="k", occurred_at=hubspot_time(), op="updated", fields={"amount": "10"}
    )
    single = map_deal(source(default_currency="EUR"), change)
    multi = map_deal(source(default_currency="EUR", multi_currency=True), change)
    assert isinstance(single, dict)
    assert single["data"]["currency"] == "EUR"
    assert isinstance(multi, dict)
    assert "currency" not in multi["data"]
    created = DealChange(
        crm_id="1",
        event_key="k2",
        occurred_at=hubspot_time(),
        op="created",
        fields={"amount": "10"},
    )
    first = map_deal(source(default_currency="EUR", multi_currency=True), created)
    assert isinstance(first, dict)
    assert first["data"]["currency"] == "EUR"


def hubspot_time() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_an_unreadable_item_is_set_aside_and_the_rest_of_the_batch_is_read() -> None:
    good = {**DJ_HUBSPOT_EVENT, "propertyName": "dealname", "propertyValue": "Fine"}
    bad_time = {**DJ_HUBSPOT_EVENT, "eventId": 2, "occurredAt": "yesterday"}
    bad_date = {
        **DJ_HUBSPOT_EVENT,
        "eventId": 3,
        "propertyName": "closedate",
        "propertyValue": "31/12/2026",
    }
    changes = hubspot.parse([bad_time, good, bad_date])
    kinds = [type(c).__name__ for c in changes]
    assert kinds == ["Unsupported", "DealChange", "Unsupported"]
    assert "occurredAt must be epoch milliseconds" in changes[0].reason  # type: ignore[union-attr]
    assert "could not be read" in changes[2].reason  # type: ignore[union-attr]


def test_engagement_edit_or_restore_fetches_the_engagement() -> None:
    # An edited call (one property per event) or a restored meeting names only the
    # engagement; its current state, deal and owner come from the API.
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 9,
        "attemptNumber": 0,
        "occurredAt": 1700000120000,
    }
    edited, restored = hubspot.parse(
        [
            {
                **base,
                "subscriptionType": "object.propertyChange",
                "objectTypeId": "0-48",
                "objectId": 42,
                "propertyName": "hs_call_disposition",
                "propertyValue": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
                "changeSource": "CRM_UI",
            },
            {
                **base,
                "subscriptionType": "object.restore",
                "objectTypeId": "0-47",
                "objectId": 43,
                "changeFlag": "RESTORED",
            },
        ]
    )
    assert edited == ResyncRequest(
        "HubSpot engagement propertyChange: fetch it as it is now", ("42",), activity_kind="call"
    )
    assert restored == ResyncRequest(
        "HubSpot engagement restore: fetch it as it is now", ("43",), activity_kind="meeting"
    )
