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

from services.pipeline_api.crm.changes import (
    AccountMerged,
    ActivityChange,
    DealChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    from_json,
    to_json,
)
from services.pipeline_api.crm.hubspot import webhook as hubspot
from services.pipeline_api.crm.mapping import Parked, map_activity, map_deal
from services.pipeline_api.sources.schemas import Mapping, SourceIn, StageMapping
from shared.events import validate_event
from shared.ordering import OrderKey

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
        map_deal(MAPPED, change=c)
        for c in hubspot.parse(creation_batch())
        if isinstance(c, DealChange)
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
    reasons = {r.reason for c in changes if isinstance(r := map_deal(bare, change=c), Parked)}
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
    assert map_deal(MAPPED, change=again) == map_deal(MAPPED, change=change)


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
    dropped = map_deal(source(), change=change)
    assert isinstance(dropped, Ignored), "nothing for an operator to do: not parked"
    assert "no field we keep" in dropped.reason
    kept = map_deal(source(keep_properties=["seats"]), change=change)
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
    mapped = map_deal(source(), change=gone[0])
    assert isinstance(mapped, dict)
    assert mapped["type"] == "com.salesops.deal.deleted.v1"
    assert mapped["data"]["merged_into"] == "hubspot:48975575:23"
    assert validate_event(mapped).payload.model_dump()["merged_into"] == "hubspot:48975575:23"


LEGACY_ASSOCIATION = {
    "portalId": 48975575,
    "appId": 1,
    "subscriptionId": 9,
    "eventId": 5,
    "occurredAt": 1700000000000,
    "subscriptionType": "deal.associationChange",
    "associationType": "DEAL_TO_COMPANY",
    "fromObjectId": 30,
    "toObjectId": 77,
    "objectId": 30,
}


def test_company_association_sets_and_clears_the_account() -> None:
    base = {**LEGACY_ASSOCIATION, "isPrimaryAssociation": True}
    added, removed = hubspot.parse(
        [{**base, "associationRemoved": False}, {**base, "eventId": 6, "associationRemoved": True}]
    )
    assert isinstance(added, DealChange)
    assert added.fields == {"account_id": "77"}
    assert isinstance(removed, DealChange)
    assert removed.fields == {"account_id": None}
    mapped = map_deal(source(), change=removed)
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
    event = map_activity(MAPPED, change=change)
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
    single = map_deal(source(default_currency="EUR"), change=change)
    multi = map_deal(source(default_currency="EUR", multi_currency=True), change=change)
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
    first = map_deal(source(default_currency="EUR", multi_currency=True), change=created)
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


def test_one_event_object_is_read_as_a_batch_of_one() -> None:
    # A delivery replayed from logs: one event object, not the array HubSpot sends.
    item = {**DJ_HUBSPOT_EVENT, "portalId": 48975575}
    assert hubspot.portal_ids(item) == {"48975575"}
    assert hubspot.parse(item) == hubspot.parse([item])


def test_generic_format_handles_every_deal_action() -> None:
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "occurredAt": 1700000000000,
        "objectTypeId": "0-3",
        "objectId": 50,
    }
    created, deleted, restored, fetch_restored, *merge = hubspot.parse(
        [
            {**base, "eventId": 1, "subscriptionType": "object.creation"},
            {**base, "eventId": 2, "subscriptionType": "object.deletion"},
            {**base, "eventId": 3, "subscriptionType": "object.restore"},
            {
                **base,
                "eventId": 4,
                "subscriptionType": "object.merge",
                "primaryObjectId": 50,
                "mergedObjectIds": [51],
                "newObjectId": 50,
            },
        ]
    )
    ops = [c.op for c in (created, deleted, restored) if isinstance(c, DealChange)]
    assert ops == ["created", "deleted", "restored"]
    assert fetch_restored == ResyncRequest("HubSpot restored the deal", ("50",))
    gone = [c for c in merge if isinstance(c, DealChange) and c.op == "deleted"]
    assert [(c.crm_id, c.merged_into) for c in gone] == [("51", "50")]


def association(
    type_id: int, removed: bool, *, from_id: int = 30, to_id: int = 77
) -> dict[str, Any]:
    """A generic `object.associationChange` (associationTypeId: 5 primary / 341 unlabelled
    deal-to-company, 6 / 342 company-to-deal)."""
    deal_side = type_id in (5, 341)
    return {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 5,
        "occurredAt": 1700000000000,
        "subscriptionType": "object.associationChange",
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": type_id,
        "fromObjectTypeId": "0-3" if deal_side else "0-2",
        "toObjectTypeId": "0-2" if deal_side else "0-3",
        "fromObjectId": from_id,
        "toObjectId": to_id,
        "associationRemoved": removed,
    }


def test_generic_association_change_sets_the_account_from_the_primary_company_only() -> None:
    added, removed, company_side, secondary_gone, secondary_added = hubspot.parse(
        [
            association(5, False),
            association(5, True),
            association(6, False, from_id=77, to_id=30),
            association(341, True),
            association(342, False, from_id=78, to_id=30),
        ]
    )
    assert isinstance(added, DealChange)
    assert added.fields == {"account_id": "77"}
    assert added.crm_id == "30"
    assert isinstance(removed, DealChange)
    assert removed.fields == {"account_id": None}
    assert isinstance(company_side, DealChange)
    assert (company_side.crm_id, company_side.fields) == ("30", {"account_id": "77"})
    assert isinstance(secondary_gone, Ignored), "a secondary company never clears the account"
    assert isinstance(secondary_added, Ignored)
    other = {**association(5, False), "associationTypeId": 3, "toObjectTypeId": "0-1"}
    assert isinstance(hubspot.parse([other])[0], Ignored), "deal-contact: nothing we keep"


def test_association_without_a_primary_flag_reads_the_deal_instead_of_clearing() -> None:
    legacy = {**LEGACY_ASSOCIATION, "associationRemoved": True}
    assert hubspot.parse([legacy]) == [
        ResyncRequest(
            "HubSpot deal-company association without a primary flag: read the deal's "
            "primary company",
            ("30",),
        )
    ]
    secondary = hubspot.parse([{**legacy, "isPrimaryAssociation": False}])
    assert isinstance(secondary[0], Ignored)


def test_switching_the_primary_company_in_one_instant_ends_on_the_new_one() -> None:
    # HubSpot sends the old primary's removal and the new one's addition at one occurredAt,
    # in either order: the addition must win the tie.
    old_gone = association(5, True, to_id=77)
    new_primary = {**association(5, False, to_id=88), "eventId": 4}
    events = [
        validate_event(mapped)
        for change in hubspot.parse([new_primary, old_gone])
        if isinstance(change, DealChange)
        and isinstance(mapped := map_deal(source(), change=change), dict)
    ]
    last = max(
        events,
        key=lambda e: OrderKey.of(
            time=e.envelope.time,
            sequence=e.envelope.sequence,
            source=e.envelope.source,
            event_id=e.envelope.id,
        ),
    )
    assert last.payload.model_dump()["account_id"] == "hubspot:48975575:88"


def test_company_merge_moves_the_merged_companies_deals_and_other_company_events_are_ignored() -> (
    None
):
    base = {
        "portalId": 48975575,
        "appId": 1,
        "subscriptionId": 9,
        "eventId": 11,
        "occurredAt": 1700000000000,
        "objectId": 70,
        "primaryObjectId": 70,
        "mergedObjectIds": [71],
        "newObjectId": 70,
    }
    legacy = hubspot.parse([{**base, "subscriptionType": "company.merge"}])
    generic = hubspot.parse([{**base, "subscriptionType": "object.merge", "objectTypeId": "0-2"}])
    assert (
        legacy
        == generic
        == [
            AccountMerged(
                merged_id="71",
                survivor_id="70",
                event_key="hs:48975575:9:11:70:-:1700000000000:merged:71",
                occurred_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            )
        ]
    )
    edit = {**base, "subscriptionType": "company.propertyChange", "propertyName": "name"}
    assert [type(c) for c in hubspot.parse([edit])] == [Ignored]


def test_a_legacy_association_without_from_id_reads_the_deal_from_object_id() -> None:
    legacy = {k: v for k, v in LEGACY_ASSOCIATION.items() if k != "fromObjectId"}
    (change,) = hubspot.parse([{**legacy, "isPrimaryAssociation": True}])
    assert isinstance(change, DealChange)
    assert (change.crm_id, change.fields) == ("30", {"account_id": "77"})


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        ({**LEGACY_ASSOCIATION, "isPrimaryAssociation": True, "toObjectId": None}, "toObjectId"),
        ({k: v for k, v in association(5, False).items() if k != "toObjectId"}, "toObjectId"),
        ({k: v for k, v in association(5, False).items() if k != "fromObjectId"}, "fromObjectId"),
    ],
)
def test_an_association_missing_an_id_is_unsupported_not_a_deal_named_none(
    event: dict[str, Any], missing: str
) -> None:
    (change,) = hubspot.parse([event])
    assert isinstance(change, Unsupported)
    assert missing in change.reason


def test_a_removal_and_an_addition_at_one_instant_never_share_a_key() -> None:
    # eventId is not unique: the same one, the same instant, the same deal.
    keys = {
        c.event_key
        for c in hubspot.parse(
            [
                association(5, True, to_id=77),
                association(5, False, to_id=77),
                association(5, False, to_id=88),
                association(6, False, from_id=88, to_id=30),
            ]
        )
        if isinstance(c, DealChange)
    }
    assert len(keys) == 4


def test_a_user_defined_type_id_is_not_read_as_a_primary_company() -> None:
    labelled = {
        **association(5, False),
        "associationCategory": "USER_DEFINED",
        "fromObjectTypeId": "0-1",
        "toObjectTypeId": "0-2",
    }
    assert isinstance(hubspot.parse([labelled])[0], Ignored), "contact to company: not a deal"
    deal_label = {**association(5, False), "associationCategory": "USER_DEFINED"}
    assert isinstance(hubspot.parse([deal_label])[0], Ignored), "a label is not the primary"


def test_an_engagement_moved_to_another_deal_is_read_back() -> None:
    call_to_deal = {
        **association(206, False, from_id=901, to_id=30),
        "fromObjectTypeId": "0-48",
        "toObjectTypeId": "0-3",
    }
    deal_to_note = {
        **association(213, True, from_id=30, to_id=902),
        "fromObjectTypeId": "0-3",
        "toObjectTypeId": "0-46",
    }
    assert hubspot.parse([call_to_deal, deal_to_note]) == [
        ResyncRequest(
            "HubSpot engagement association with a deal changed: fetch it as it is now",
            ("901",),
            activity_kind="call",
        ),
        ResyncRequest(
            "HubSpot engagement association with a deal changed: fetch it as it is now",
            ("902",),
            activity_kind="note",
        ),
    ]
