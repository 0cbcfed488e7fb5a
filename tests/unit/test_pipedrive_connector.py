"""Pipedrive webhook parsing (crm/pipedrive/webhook.py), against published payload shapes.

Fixtures in tests/fixtures/pipedrive/, and where each shape comes from:

- v2 envelope `{meta, data, previous}`, meta fields, `merged_to_id` / `merged_from_id`:
  https://pipedrive.readme.io/docs/guide-for-webhooks-v2 and
  https://pipedrive.readme.io/docs/webhooks-v2-migration-guide
  (mirror: fav83/whatsapp2pipe Docs/External/Pipedrive/docs/guide-for-webhooks-v2.md).
- v2_deal_create_pipedream.json: PipedreamHQ/pipedream
  components/pipedrive/sources/new-deal-instant/test-event.mjs, verbatim.
- v2_deal_change_stage.json: @pipedream/pipedrive@0.10.3
  sources/updated-deal-instant/test-event.mjs; published with meta.action "create" next to a
  non-null `previous`, corrected to "change". won / value_fraction / delete / merge_* reuse
  its shape.
- v2_deal_create_int_ids_numeric_ts.json, v2_deal_change_prismatic.json: meta as in
  https://prismatic.io/docs/example-payloads/pipedrive/triggers/pipedriveTrigger.json
  (integer ids, numeric `timestamp` 1727447128); v2_deal_create_string_ids.json: the same
  deal with the guide's meta (ids as strings, ISO timestamp).
- v2_deal_create_custom_fields.json: custom field value shapes from trackit/crm-pipedrive2ace
  src/migration/datastructures/PipedriveDeal.ts (a v2 webhook handler).
- v2_activity_create.json: v2 envelope with data per the v2 ActivityItem
  (pipedrive/client-php docs/versions/v2/Model/ActivityItem.md); no published v2 activity
  webhook example was found. v2_activity_delete.json: the same activity deleted, in the
  guide's delete shape (`data` null, `previous` the last state).
- v2_lead_change_pipedream.json: PipedreamHQ/pipedream
  components/pipedrive/sources/updated-lead-instant/test-event.mjs, verbatim.
- v1: https://pipedrive.readme.io/docs/guide-for-webhooks (mirror in fav83/whatsapp2pipe);
  v1_deal_added / v1_deal_updated / v1_activity_added: sulsseo/django_pipedrive
  pipedrive/tests.py (test_create_deal_with_organization, test_update_deal,
  test_create_activity), verbatim; v1_deal_deleted / v1_deal_merged: the shapes of its
  test_delete_organization / test_merge_organizations applied to deals; v1_activity_deleted:
  v1_activity_added in that delete shape (`current` null, `previous` the object);
  v1_deal_updated_pipedream.json: PipedreamHQ/pipedream
  components/pipedrive/sources/updated-deal-instant/test-event.mjs (v1 version), verbatim.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.pipeline_api.crm.changes import (
    AccountMerged,
    ActivityChange,
    DealChange,
    Ignored,
    ResyncRequest,
    Unsupported,
)
from services.pipeline_api.crm.mapping import map_activity, map_deal
from services.pipeline_api.crm.pipedrive.webhook import PipedriveError, parse
from services.pipeline_api.sources.schemas import Mapping, SourceIn, StageMapping
from shared.events import validate_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pipedrive"

TEXT = "dcf558aac1ae4e8c4f849ba5e668430d8df9be12"
ENUM = "5a329a696fd92748ef43d16be56d20aee7c1992c"
SET = "c73beea5abc26ffb6fca1b51d2a4abc4eed6fe36"
DOUBLE = "d39dfba9e1b8d4bd0c3e9a2a7d3cd5d8e2a0f111"
MONEY = "ed104988783561f80a0b338ad5d96d6381bc82a8"
EMPTY = "647752a4c2786eb30c8487451b41eb9f620cc151"


PD_SOURCE = SourceIn(
    id="pd-main",
    kind="pipedrive",
    account_id="12882925",
    mapping=Mapping(
        stages={"1": StageMapping(stage="Qualified"), "2": StageMapping(stage="Demo")},
        owners={"18487521": "rep-ana", "123123": "rep-bo"},
        keep_properties=[ENUM],
    ),
)


def load(name: str) -> Any:
    """As the route parses bodies: numbers with a fraction become Decimal, never float."""
    return json.loads((FIXTURES / name).read_text(), parse_float=Decimal)


def one_deal(body: Any) -> DealChange:
    changes = parse(body)
    assert len(changes) == 1, changes
    change = changes[0]
    assert isinstance(change, DealChange)
    return change


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- v2 deals --------------------------------------------------------------------------


def test_v2_create_with_string_ids_and_iso_timestamp() -> None:
    change = one_deal(load("v2_deal_create_string_ids.json"))
    assert change.crm_id == "1"
    assert change.event_key == "pd:1"
    assert change.op == "created"
    assert change.occurred_at == utc(2024, 9, 27, 14, 25, 28)
    assert change.fields == {
        "name": "test deal",
        "amount": "2",
        "currency": "USD",
        "status": "open",
        "stage": "1",
        "pipeline": "1",
        "owner_id": "18487521",
        "account_id": "2",
        "close_date": "2024-10-31",
        "created_at": "2024-09-27T14:25:27Z",
    }
    assert "deal_type" not in change.fields
    assert change.properties == {}
    assert change.merged_into is None


def test_v2_create_with_int_ids_and_numeric_timestamp_gives_same_values() -> None:
    as_strings = one_deal(load("v2_deal_create_string_ids.json"))
    as_ints = one_deal(load("v2_deal_create_int_ids_numeric_ts.json"))
    assert as_ints.crm_id == as_strings.crm_id == "1"
    assert as_ints.event_key == as_strings.event_key == "pd:1"
    assert as_ints.occurred_at == as_strings.occurred_at == utc(2024, 9, 27, 14, 25, 28)
    assert as_ints.fields == as_strings.fields
    assert as_ints.properties == as_strings.properties
    assert all(isinstance(v, str) for k, v in as_ints.fields.items() if k != "close_date")


def test_v2_create_pipedream_fixture() -> None:
    change = one_deal(load("v2_deal_create_pipedream.json"))
    assert change.event_key == "pd:123456789-1234-1234-1234-123456789012"
    assert change.crm_id == "1"
    assert change.occurred_at == utc(2023, 1, 1)
    assert change.fields["owner_id"] == "123123"
    assert change.fields["account_id"] == "2"
    assert change.fields["amount"] == "2"
    assert change.fields["currency"] == "BRL"
    assert change.fields["close_date"] is None
    assert change.fields["created_at"] == "2025-04-15T15:31:17Z"


def test_v2_change_emits_only_the_changed_fields() -> None:
    change = one_deal(load("v2_deal_change_stage.json"))
    assert change.op == "updated"
    assert change.crm_id == "1"
    assert change.fields == {"stage": "2"}
    assert change.properties == {}


def test_v2_change_to_won() -> None:
    change = one_deal(load("v2_deal_change_won.json"))
    assert change.op == "updated"
    assert change.fields == {"status": "won"}
    assert change.occurred_at == datetime(2025, 4, 16, 9, 12, 3, 441000, tzinfo=UTC)


def test_value_with_a_fraction_stays_exact_and_carries_its_currency() -> None:
    body = load("v2_deal_change_value_fraction.json")
    assert body["data"]["value"] == Decimal("1500.75")
    change = one_deal(body)
    # The currency comes along so that mapping does not apply the source default.
    assert change.fields == {"amount": "1500.75", "currency": "EUR"}


@pytest.mark.parametrize(
    ("value", "amount"),
    [(Decimal("1500.75"), "1500.75"), (1500, "1500"), ("1500.75", "1500.75"), (None, None)],
)
def test_amount_forms(value: Any, amount: str | None) -> None:
    body = load("v2_deal_create_pipedream.json")
    body["data"]["value"] = value
    assert one_deal(body).fields["amount"] == amount


def test_amount_parsed_as_float_is_refused_not_rounded() -> None:
    body = json.loads((FIXTURES / "v2_deal_change_value_fraction.json").read_text())
    changes = parse(body)  # parsed without parse_float=Decimal: 1500.75 is a float here
    assert len(changes) == 1
    assert isinstance(changes[0], Unsupported)
    assert "float" in changes[0].reason


def test_v2_change_without_previous_states_every_field() -> None:
    # Published that way by the vendor: action "change" with previous null.
    change = one_deal(load("v2_deal_change_prismatic.json"))
    assert change.op == "updated"
    assert change.occurred_at == utc(2024, 9, 27, 14, 25, 28)
    assert set(change.fields) == {
        "name",
        "amount",
        "currency",
        "status",
        "stage",
        "pipeline",
        "owner_id",
        "account_id",
        "created_at",
    }


def test_v2_change_touching_no_tracked_field_is_ignored() -> None:
    body = load("v2_deal_change_stage.json")
    body["previous"] = {"label_ids": [], "update_time": "2025-04-15T15:00:00Z"}
    (ignored,) = parse(body)
    assert isinstance(ignored, Ignored)
    assert "touches no field we read" in ignored.reason


def test_v2_delete() -> None:
    change = one_deal(load("v2_deal_delete.json"))
    assert change.op == "deleted"
    assert change.crm_id == "1"
    assert change.fields == {}
    assert change.merged_into is None
    assert change.occurred_at == utc(2025, 4, 17, 8)


def test_v2_delete_without_entity_id_uses_previous_id() -> None:
    body = load("v2_deal_delete.json")
    del body["meta"]["entity_id"]
    body["previous"]["id"] = 31
    assert one_deal(body).crm_id == "31"


def test_v2_merge_is_a_delete_into_the_survivor_an_update_and_a_resync() -> None:
    deleted = parse(load("v2_deal_merge_delete.json"))
    updated = parse(load("v2_deal_merge_change.json"))

    assert len(deleted) == 2
    gone = deleted[0]
    assert isinstance(gone, DealChange)
    assert (gone.crm_id, gone.op, gone.merged_into) == ("7", "deleted", "1")
    assert deleted[1] == ResyncRequest("merge", ("1",))

    assert len(updated) == 2
    survivor = updated[0]
    assert isinstance(survivor, DealChange)
    assert (survivor.crm_id, survivor.op, survivor.merged_into) == ("1", "updated", None)
    assert survivor.fields == {"amount": "5", "currency": "BRL"}
    assert updated[1] == ResyncRequest("merge", ("1",))
    assert gone.event_key != survivor.event_key


def test_custom_fields_become_properties_by_hash() -> None:
    change = one_deal(load("v2_deal_create_custom_fields.json"))
    assert change.properties == {
        TEXT: "Inbound",
        ENUM: 42,  # option fields keep their option id
        SET: [7, 9],
        DOUBLE: "12.5",
        MONEY: "2400.10",
        f"{MONEY}_currency": "EUR",
        EMPTY: None,
    }
    assert "custom_fields" not in change.fields


def test_v2_change_keeps_only_the_changed_custom_fields() -> None:
    body = load("v2_deal_create_custom_fields.json")
    body["meta"]["action"] = "change"
    body["previous"] = {"custom_fields": {ENUM: {"type": "enum", "id": 41}}}
    change = one_deal(body)
    assert change.op == "updated"
    assert change.fields == {}
    assert change.properties == {ENUM: 42}


def test_v2_status_deleted_is_a_delete() -> None:
    body = load("v2_deal_change_stage.json")
    body["data"]["status"] = "deleted"
    body["previous"] = {"status": "open"}
    change = one_deal(body)
    assert change.op == "deleted"
    assert change.fields == {}


def test_undelete_is_a_restore_stated_in_full() -> None:
    body = load("v1_deal_updated.json")
    body["previous"]["status"] = "deleted"
    change = one_deal(body)
    assert change.op == "restored"
    assert change.fields["name"] == "TEST_DEAL"
    assert change.fields["status"] == "open"
    assert change.fields["amount"] == "1000"


# --- v1 deals --------------------------------------------------------------------------


def test_v1_added() -> None:
    change = one_deal(load("v1_deal_added.json"))
    assert change.op == "created"
    assert change.crm_id == "9"
    assert change.event_key.startswith("pd:v1:deal:added:9:")
    # timestamp_milli beats the 10-digit timestamp: same instant, finer.
    assert change.occurred_at == datetime(2017, 4, 20, 13, 40, 25, 650000, tzinfo=UTC)
    assert change.fields == {
        "name": "TEST_ORGANIZATION negocio",
        "amount": "3500",
        "currency": "CLF",
        "status": "open",
        "stage": "1",
        "pipeline": "1",
        "owner_id": "2428657",
        "account_id": "18",
        "close_date": "2017-04-29",
        "created_at": "2017-04-20T13:40:25Z",
    }


def test_v1_updated_emits_the_fields_whose_values_differ() -> None:
    change = one_deal(load("v1_deal_updated.json"))
    assert change.op == "updated"
    assert change.crm_id == "999"
    # user_id went from 2428657 to {"id": 2428657, ...}: the same owner, so not a change.
    assert change.fields == {"amount": "1000", "currency": "USD", "pipeline": "1"}


def test_v1_user_and_org_objects_are_read_by_id() -> None:
    body = load("v1_deal_added.json")
    body["current"]["user_id"] = {"id": 77, "name": "Rep", "value": 77}
    body["current"]["org_id"] = {"name": "Acme", "value": 18, "people_count": 2}
    change = one_deal(body)
    assert change.fields["owner_id"] == "77"
    assert change.fields["account_id"] == "18"


def test_v1_update_of_untracked_fields_only_is_ignored() -> None:
    # Only update_time differs between current and previous in this published event.
    assert [type(c) for c in parse(load("v1_deal_updated_pipedream.json"))] == [Ignored]


def test_v1_custom_fields_are_top_level_hash_keys() -> None:
    body = load("v1_deal_updated.json")
    body["previous"][TEXT] = "old"
    body["current"][TEXT] = "new"
    body["current"][ENUM] = "12"
    body["previous"][ENUM] = "12"
    change = one_deal(body)
    assert change.properties == {TEXT: "new"}


def test_v1_deleted() -> None:
    change = one_deal(load("v1_deal_deleted.json"))
    assert change.op == "deleted"
    assert change.crm_id == "9"
    assert change.merged_into is None
    assert change.event_key.startswith("pd:v1:deal:deleted:9:")


def test_v1_merged_deletes_the_merged_away_deal_into_the_survivor() -> None:
    changes = parse(load("v1_deal_merged.json"))
    assert len(changes) == 2
    gone = changes[0]
    assert isinstance(gone, DealChange)
    assert (gone.crm_id, gone.op, gone.merged_into) == ("9", "deleted", "999")
    assert changes[1] == ResyncRequest("merge", ("999",))


def test_v1_event_key_is_not_the_bare_object_id() -> None:
    # v1 meta.id is the deal's id: two updates of one deal must not share a key.
    first = load("v1_deal_updated.json")
    second = copy.deepcopy(first)
    second["meta"]["timestamp"] += 60
    second["meta"]["timestamp_milli"] += 60_000
    assert one_deal(first).event_key != one_deal(second).event_key


# --- activities ------------------------------------------------------------------------


def test_v2_activity_create() -> None:
    changes = parse(load("v2_activity_create.json"))
    assert changes == [
        ActivityChange(
            crm_id="55",
            event_key="pd:923456789-1234-1234-1234-123456789012",
            occurred_at=utc(2025, 4, 16, 14, 30),
            kind="call",
            deal_crm_id="1",
            account_id="2",
            rep_crm_id="123123",
            properties={
                "subject": "Discovery call",
                "done": False,
                "duration": "00:30",
                "note": "Bring pricing",
            },
            changed_at=utc(2025, 4, 15, 16, 0),
        )
    ]


@pytest.mark.parametrize(
    ("type_", "kind"),
    [
        ("call", "call"),
        ("meeting", "meeting"),
        ("lunch", "meeting"),
        ("task", "task"),
        ("deadline", "task"),
        ("email", "email"),
        ("demo_custom_type", "note"),
        (None, "note"),
    ],
)
def test_activity_kind_mapping(type_: str | None, kind: str) -> None:
    body = load("v2_activity_create.json")
    body["data"]["type"] = type_
    (change,) = parse(body)
    assert isinstance(change, ActivityChange)
    assert change.kind == kind


def test_activity_without_due_date_happens_at_add_time() -> None:
    body = load("v2_activity_create.json")
    body["data"]["due_date"] = None
    body["data"]["add_time"] = "2025-04-15T16:05:00Z"
    (change,) = parse(body)
    assert isinstance(change, ActivityChange)
    assert change.occurred_at == utc(2025, 4, 15, 16, 5)


def test_activity_properties_only_when_present() -> None:
    body = load("v2_activity_create.json")
    del body["data"]["note"]
    del body["data"]["duration"]
    (change,) = parse(body)
    assert isinstance(change, ActivityChange)
    assert change.properties == {"subject": "Discovery call", "done": False}


def test_v1_activity_added() -> None:
    (change,) = parse(load("v1_activity_added.json"))
    assert isinstance(change, ActivityChange)
    assert change.crm_id == "1"
    assert change.kind == "call"
    assert change.occurred_at == utc(2017, 4, 20, 16, 0)
    assert (change.deal_crm_id, change.account_id, change.rep_crm_id) == ("14", "18", "2428657")
    assert change.properties == {
        "subject": "That call",
        "done": False,
        "duration": "01:30",
        "note": "It is an important call",
    }


def test_activity_change_is_ordered_by_the_webhook_not_the_due_date() -> None:
    # A meeting due next week, moved today: today's change must supersede the creation,
    # which the due date (later than today) would not.
    body = load("v2_activity_create.json")
    body["meta"].update(action="change", timestamp="2025-04-15T17:00:00.000Z")
    body["data"]["due_date"] = "2025-04-23"
    body["previous"] = {"due_date": "2025-04-16"}
    (change,) = parse(body)
    assert isinstance(change, ActivityChange)
    assert change.occurred_at == utc(2025, 4, 23, 14, 30)
    assert change.changed_at == utc(2025, 4, 15, 17, 0)
    event = map_activity(PD_SOURCE, change=change)
    assert isinstance(event, dict)
    assert event["time"] == "2025-04-15T17:00:00Z"


def test_v2_activity_delete() -> None:
    changes = parse(load("v2_activity_delete.json"))
    assert changes == [
        ActivityChange(
            crm_id="55",
            event_key="pd:a23456789-1234-1234-1234-123456789012",
            occurred_at=utc(2025, 4, 17, 9, 0),
            kind="call",
            op="deleted",
        )
    ]


def test_v1_activity_deleted() -> None:
    (change,) = parse(load("v1_activity_deleted.json"))
    assert isinstance(change, ActivityChange)
    assert (change.crm_id, change.op, change.kind) == ("1", "deleted", "call")
    assert change.occurred_at == datetime(2017, 4, 21, 14, 55, 33, 512000, tzinfo=UTC)
    assert change.event_key == "pd:v1:activity:deleted:1:1492786533512000"


def test_activity_marked_deleted_in_a_change_is_a_deletion() -> None:
    body = load("v2_activity_create.json")
    body["meta"]["action"] = "change"
    body["data"]["is_deleted"] = True
    body["previous"] = {"is_deleted": False}
    (change,) = parse(body)
    assert isinstance(change, ActivityChange)
    assert (change.crm_id, change.op) == ("55", "deleted")


def test_activity_delete_without_an_id_is_unsupported() -> None:
    body = load("v2_activity_delete.json")
    del body["meta"]["entity_id"]
    del body["previous"]["id"]
    (change,) = parse(body)
    assert isinstance(change, Unsupported)
    assert "activity delete without" in change.reason


def test_activity_delete_maps_to_a_deleted_event_keyed_by_the_activity() -> None:
    (change,) = parse(load("v2_activity_delete.json"))
    assert isinstance(change, ActivityChange)
    event = map_activity(PD_SOURCE, change=change)
    assert isinstance(event, dict)
    validated = validate_event(event)
    assert validated.envelope.type == "com.salesops.activity.deleted.v1"
    assert validated.raw["data"] == {"activity_id": "pipedrive:12882925:55"}
    assert (validated.subject, validated.partition_key) == ("pipedrive:12882925:55",) * 2
    assert validated.topic == "crm.activity.v1"
    assert validated.envelope.time == utc(2025, 4, 17, 9, 0)
    assert validated.envelope.id == change.event_key


def test_activity_merge_is_still_unsupported() -> None:
    body = load("v1_activity_added.json")
    body["meta"]["action"] = "merged"
    changes = parse(body)
    assert changes == [Unsupported("activity merges are not tracked", body)]


# --- unsupported, errors, retries ------------------------------------------------------


def test_unknown_entity_is_unsupported_naming_it() -> None:
    body = load("v2_lead_change_pipedream.json")
    changes = parse(body)
    assert len(changes) == 1
    item = changes[0]
    assert isinstance(item, Unsupported)
    assert "'lead'" in item.reason
    assert item.item is body


def test_unknown_v1_object_is_unsupported() -> None:
    body = load("v1_deal_added.json")
    body["meta"]["object"] = "person"
    (item,) = parse(body)
    assert isinstance(item, Unsupported)
    assert "'person'" in item.reason


def test_unreadable_value_is_unsupported_not_an_error() -> None:
    body = load("v2_deal_create_pipedream.json")
    body["data"]["value"] = "lots"
    (item,) = parse(body)
    assert isinstance(item, Unsupported)
    assert "lots" in item.reason


def test_missing_every_timestamp_is_unsupported() -> None:
    body = load("v2_deal_delete.json")
    del body["meta"]["timestamp"]
    body["previous"]["update_time"] = None
    (item,) = parse(body)
    assert isinstance(item, Unsupported)
    assert "timestamp" in item.reason


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "create.deal",
        {},
        {"meta": "deal"},
        {"meta": {}, "data": {}},
        {"meta": {"action": "create", "entity": "deal"}, "data": {"id": 1}},  # no meta.id
        {"meta": {"action": "create", "entity": "deal", "id": "e"}, "data": [1]},
        {"meta": {"action": "create", "entity": "deal", "id": True}, "data": {}},
        {"meta": {"action": "added", "id": 9}, "current": "deal"},
        {"meta": {"id": 9, "object": "deal"}, "current": {}, "previous": None},  # no action
    ],
)
def test_garbage_raises_pipedrive_error(body: Any) -> None:
    with pytest.raises(PipedriveError):
        parse(body)


def test_pipedrive_error_is_a_value_error() -> None:
    assert issubclass(PipedriveError, ValueError)


def test_retried_v2_delivery_has_the_same_event_key() -> None:
    first = load("v2_deal_change_stage.json")
    retry = copy.deepcopy(first)
    retry["meta"]["attempt"] = 3
    assert parse(retry) == parse(first)
    assert one_deal(retry).event_key == "pd:223456789-1234-1234-1234-123456789012"


def test_retried_v1_delivery_has_the_same_event_key() -> None:
    first = load("v1_deal_updated.json")
    retry = copy.deepcopy(first)
    retry["retry"] = 2
    assert one_deal(retry).event_key == one_deal(first).event_key


def test_same_body_same_result() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        assert parse(load(path.name)) == parse(load(path.name)), path.name


@pytest.mark.parametrize(
    "stamp",
    ["2022-11-24T13:18:56.000Z", 1669295936, "1669295936", 1669295936000, Decimal("1669295936")],
)
def test_meta_timestamp_forms(stamp: Any) -> None:
    body = load("v2_deal_change_stage.json")
    body["meta"]["timestamp"] = stamp
    assert one_deal(body).occurred_at == utc(2022, 11, 24, 13, 18, 56)


@pytest.mark.parametrize("update_time", ["2022-11-24 13:18:56", "2022-11-24T13:18:56Z"])
def test_update_time_is_the_fallback_timestamp(update_time: str) -> None:
    body = load("v2_deal_change_stage.json")
    del body["meta"]["timestamp"]
    body["data"]["update_time"] = update_time
    assert one_deal(body).occurred_at == utc(2022, 11, 24, 13, 18, 56)


# --- through mapping into the canonical contract ---------------------------------------


def test_parsed_changes_map_to_valid_canonical_events() -> None:
    source = PD_SOURCE
    bodies = [
        "v2_deal_create_int_ids_numeric_ts.json",
        "v2_deal_change_value_fraction.json",
        "v2_deal_merge_delete.json",
        "v2_activity_create.json",
        "v2_activity_delete.json",
        "v1_activity_deleted.json",
    ]
    for name in bodies:
        for change in parse(load(name)):
            if isinstance(change, DealChange):
                event = map_deal(source, change=change)
            elif isinstance(change, ActivityChange):
                event = map_activity(source, change=change)
            else:
                continue
            assert isinstance(event, dict), (name, event)
            validated = validate_event(event)
            orjson.dumps(validated.raw)  # JSON-native: no Decimal, no datetime left
            if name == "v2_deal_change_value_fraction.json":
                assert event["data"]["amount"] == "1500.75"
                assert event["data"]["currency"] == "EUR"


def test_activity_due_time_and_duration_given_as_objects_keep_their_values() -> None:
    body = load("v2_activity_create.json")
    body["data"]["due_time"] = {"value": "14:30"}
    body["data"]["duration"] = {"value": "00:30"}
    (activity,) = parse(body)
    assert isinstance(activity, ActivityChange)
    assert activity.occurred_at == utc(2025, 4, 16, 14, 30), "not midnight"
    assert activity.properties["duration"] == "00:30"
    assert parse(load("v2_activity_create.json"))[0] == activity, "same as the bare form"
    body["data"]["due_time"] = {"timezone": "UTC"}
    (unreadable,) = parse(body)
    assert isinstance(unreadable, Unsupported), "a due time without a value is not midnight"
    assert "due_time" in unreadable.reason


def test_body_whose_entity_disagrees_with_its_data_is_set_aside() -> None:
    body = load("v2_activity_create.json")
    body["meta"]["entity"] = "deal"
    (mismatch,) = parse(body)
    assert isinstance(mismatch, Unsupported), "not a half-empty deal"
    assert "meta names a deal" in mismatch.reason
    deal = load("v2_deal_change_stage.json")
    deal["meta"]["entity"] = "activity"
    assert isinstance(parse(deal)[0], Unsupported)


def organization_merge_v2() -> dict[str, Any]:
    """Shape: the published v2 merge (a `delete` whose meta carries `merged_to_id`, the
    migration guide's rule for every entity) for organisation 5 merged into 2."""
    body = load("v2_deal_merge_delete.json")
    body["meta"].update(entity="organization", entity_id=5, merged_to_id="2")
    body["previous"] = {"id": 5, "name": "Acme (duplicate)", "owner_id": 123123}
    return dict(body)


def test_organization_merge_repoints_the_merged_organizations_deals() -> None:
    (merged,) = parse(organization_merge_v2())
    assert merged == AccountMerged(
        merged_id="5",
        survivor_id="2",
        event_key="pd:623456789-1234-1234-1234-123456789012",
        occurred_at=utc(2025, 4, 18, 12),
    )
    survivor = load("v2_deal_merge_change.json")
    survivor["meta"].update(entity="organization", entity_id=2)
    survivor["data"] = {"id": 2, "name": "Acme", "owner_id": 123123}
    survivor["previous"] = {"name": "Acme Inc"}
    assert [type(c) for c in parse(survivor)] == [Ignored]


def test_v1_organization_merged_names_survivor_and_merged() -> None:
    body = load("v1_deal_merged.json")
    body["meta"].update(object="organization")
    body["current"] = {"id": 2, "name": "Acme", "merge_what_id": 5}
    body["previous"] = {"id": 5, "name": "Acme (duplicate)"}
    (merged,) = parse(body)
    assert isinstance(merged, AccountMerged)
    assert (merged.merged_id, merged.survivor_id) == ("5", "2")
