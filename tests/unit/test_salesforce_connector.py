"""Salesforce CDC events and Outbound Messages parsed into `CrmChange`s.

Fixtures are in tests/fixtures/salesforce/ (README.md there names each one's source). JSON
fixtures are read the way the route reads bodies: `json.loads(parse_float=Decimal)`.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest

from services.pipeline_api.crm.changes import (
    ActivityChange,
    CrmChange,
    DealChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    from_json,
    to_json,
)
from services.pipeline_api.crm.mapping import map_activity
from services.pipeline_api.crm.salesforce.webhook import (
    CdcError,
    OutboundError,
    outbound_ack,
    parse_cdc,
    parse_outbound,
    redact_session_id,
)
from services.pipeline_api.sources.schemas import Mapping, SourceIn
from shared.events import validate_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "salesforce"
OPPORTUNITY = "0065w000023STAmAAO"
ORG = "00D5w000004qGTOEA2"
SF_SOURCE = SourceIn(
    id="sf",
    kind="salesforce",
    account_id=ORG,
    mapping=Mapping(owners={"0055w00000BhqR0AAJ": "rep-di"}),
)


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def load(name: str) -> Any:
    return json.loads(text(name), parse_float=Decimal)


def header(message: dict[str, Any]) -> dict[str, Any]:
    """The ChangeEventHeader of a CometD message fixture, for variations of it."""
    result: dict[str, Any] = message["data"]["payload"]["ChangeEventHeader"]
    return result


def only(changes: list[CrmChange]) -> CrmChange:
    assert len(changes) == 1, changes
    return changes[0]


def deal(changes: list[CrmChange]) -> DealChange:
    change = only(changes)
    assert isinstance(change, DealChange)
    return change


def at(millis: int) -> datetime:
    return datetime.fromtimestamp(millis // 1000, UTC)


# --- CDC: CREATE / UPDATE / DELETE / UNDELETE ------------------------------------------


def test_create_maps_every_field() -> None:
    # Shape: CometD message per CDC Developer Guide "Change Event Message Structure" and
    # "Change Event Body Fields" (CREATE: all non-empty fields), header as in the real
    # CometD capture WorkPuma/vivaeve s15Payload.dwl (crm-webhooks.md S2, S16).
    change = deal(parse_cdc(load("cdc_cometd_opportunity_create.json")))
    assert change.crm_id == OPPORTUNITY
    assert change.op == "created"
    assert change.event_key == f"sfcdc:0000a62a-5497-10e0-dbe3-e99b71589a49:1:{OPPORTUNITY}"
    assert change.occurred_at == datetime(2024, 9, 3, 9, 56, 5, tzinfo=UTC)
    assert change.occurred_at.utcoffset() is not None
    assert change.sequence == 1
    assert change.fields == {
        "name": "Backpackers, Inc. renewal",
        "account_id": "0015w00002BFDeLAAX",
        "owner_id": "0055w00000BhqR0AAJ",
        "amount": "45000.50",
        "currency": "EUR",
        "stage": "Prospecting",
        "forecast_category": "pipeline",
        "close_date": "2024-11-30",
        "created_at": "2024-09-03T09:56:05+00:00",
        "deal_type": "Existing Customer - Upgrade",
        "status": "open",
    }
    # Custom and other standard fields are properties; system fields are not.
    assert change.properties == {
        "Probability": "10.0",
        "LeadSource": "External Referral",
        "IsPrivate": False,
        "CreatedById": "0055w00000BhqR0AAJ",
        "Renewal_Term_Months__c": 12,
    }


def test_update_carries_only_changed_fields_with_derived_stage_fields() -> None:
    # Shape: CometD UPDATE per CDC Developer Guide "Change Event Body Fields" (only changed
    # fields, a field set to null is sent as null, plus LastModifiedDate) and Object
    # Reference, Opportunity (ForecastCategoryName/IsClosed/IsWon follow StageName).
    change = deal(parse_cdc(load("cdc_cometd_opportunity_update_stage.json")))
    assert change.op == "updated"
    assert change.fields == {"stage": "Closed Won", "forecast_category": "closed", "status": "won"}
    # NextStep was set to null: "changed to null" is kept, not dropped as absent.
    assert change.properties == {"Probability": "100.0", "NextStep": None}
    assert change.sequence == 1


def test_update_ignores_payload_fields_not_named_in_changed_fields() -> None:
    # Shape: the CometD UPDATE fixture, with one extra field that changedFields does not
    # name (as Pub/Sub sends unchanged fields): it must not be reported as changed.
    message = load("cdc_cometd_opportunity_update_stage.json")
    message["data"]["payload"]["Name"] = "Not changed"
    change = deal(parse_cdc(message))
    assert "name" not in change.fields


def test_update_without_changed_fields_uses_non_null_fields_present() -> None:
    # Shape: the CometD UPDATE fixture with changedFields removed (some relays drop it).
    message = load("cdc_cometd_opportunity_update_stage.json")
    del header(message)["changedFields"]
    change = deal(parse_cdc(message))
    assert change.fields == {"stage": "Closed Won", "forecast_category": "closed", "status": "won"}
    assert change.properties == {"Probability": "100.0"}


def test_update_of_system_fields_only_is_ignored() -> None:
    # Shape: CometD UPDATE where only LastModifiedDate changed (CDC guide: it is always
    # in an UPDATE's body); there is nothing for a deal to record.
    message = load("cdc_cometd_opportunity_update_stage.json")
    payload = message["data"]["payload"]
    message["data"]["payload"] = {
        "ChangeEventHeader": payload["ChangeEventHeader"],
        "LastModifiedDate": payload["LastModifiedDate"],
    }
    header(message)["changedFields"] = ["LastModifiedDate"]
    assert [type(c) for c in parse_cdc(message)] == [Ignored]


@pytest.mark.parametrize(
    ("is_closed", "is_won", "status"),
    [
        (None, False, "lost"),  # won -> lost: only IsWon changes
        (None, True, "won"),  # lost -> won: only IsWon changes
        (True, None, "lost"),  # open -> lost: only IsClosed changes
        (False, False, "open"),  # won -> reopened
    ],
)
def test_update_status_from_the_flags_that_changed(
    is_closed: bool | None, is_won: bool | None, status: str
) -> None:
    # Shape: the CometD UPDATE fixture with only the flags that change between the stages.
    message = load("cdc_cometd_opportunity_update_stage.json")
    payload = message["data"]["payload"]
    changed = ["StageName", "LastModifiedDate"]
    for name, value in (("IsClosed", is_closed), ("IsWon", is_won)):
        payload.pop(name)
        if value is not None:
            payload[name] = value
            changed.append(name)
    header(message)["changedFields"] = changed
    assert deal(parse_cdc(message)).fields["status"] == status


def test_delete_has_no_fields() -> None:
    # Shape: CometD DELETE per CDC Developer Guide "Change Event Body Fields" (no fields).
    change = deal(parse_cdc(load("cdc_cometd_opportunity_delete.json")))
    assert change.op == "deleted"
    assert change.fields == {}
    assert change.properties == {}
    assert change.occurred_at == at(1726129800000)


def test_undelete_is_restored_with_its_fields() -> None:
    # Shape: CometD UNDELETE per CDC Developer Guide "Change Event Body Fields" (all
    # non-empty fields of the original record); ForecastCategory API value "Forecast" is
    # Commit (Object Reference, Opportunity).
    change = deal(parse_cdc(load("cdc_cometd_opportunity_undelete.json")))
    assert change.op == "restored"
    assert change.fields["stage"] == "Negotiation/Review"
    assert change.fields["amount"] == "47000"
    assert change.fields["forecast_category"] == "commit"
    assert change.fields["status"] == "open"


def test_merged_event_is_one_change_per_record() -> None:
    # Shape: CometD UPDATE with three recordIds, per CDC Developer Guide "Merged Change
    # Events" (the same change to several records of one type in one transaction).
    changes = parse_cdc(load("cdc_cometd_opportunity_merged_update.json"))
    deals = [c for c in changes if isinstance(c, DealChange)]
    assert len(deals) == len(changes) == 3
    assert [c.crm_id for c in deals] == [
        "0065w000023STAmAAO",
        "0065w000023STAnAAO",
        "0065w000023STAoAAO",
    ]
    assert len({c.event_key for c in deals}) == 3
    assert all(c.fields == {"owner_id": "0055w00000CdeF1AAJ"} for c in deals)
    assert all(c.occurred_at == at(1726043400000) for c in deals)


# --- CDC: gaps, overflow, wildcards, snapshots -----------------------------------------


@pytest.mark.parametrize("change_type", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"])
def test_gap_events_ask_to_refetch_their_records(change_type: str) -> None:
    # Shape: CometD gap event, header only, per CDC Developer Guide "Gap Events".
    message = load("cdc_cometd_opportunity_gap_update.json")
    header(message)["changeType"] = change_type
    change = only(parse_cdc(message))
    assert isinstance(change, ResyncRequest)
    assert change.crm_ids == ("0065w000023STAmAAO", "0065w000023STAnAAO")
    assert change_type in change.reason


def test_gap_overflow_asks_for_a_full_resync() -> None:
    # Shape: GAP_OVERFLOW with the dummy id 000000000000000AAA, per CDC Developer Guide
    # "Overflow Events".
    change = only(parse_cdc(load("cdc_cometd_opportunity_gap_overflow.json")))
    assert isinstance(change, ResyncRequest)
    assert change.crm_ids == ()
    assert "GAP_OVERFLOW" in change.reason


def test_wildcard_record_id_asks_for_a_full_resync() -> None:
    # Shape: CDC header reference: recordIds may hold a "006*"-style wildcard after a
    # field type conversion.
    message = load("cdc_cometd_opportunity_update_stage.json")
    header(message)["recordIds"] = ["006*"]
    change = only(parse_cdc(message))
    assert isinstance(change, ResyncRequest)
    assert change.crm_ids == ()


def test_snapshot_is_unsupported() -> None:
    # Shape: CDC header reference lists SNAPSHOT as a reserved changeType.
    message = load("cdc_cometd_opportunity_update_stage.json")
    header(message)["changeType"] = "SNAPSHOT"
    change = only(parse_cdc(message))
    assert isinstance(change, Unsupported)
    assert "SNAPSHOT" in change.reason


# --- CDC: Pub/Sub bitmaps --------------------------------------------------------------


def test_bitmap_changed_fields_are_decoded_against_the_field_list() -> None:
    # Shape: decoded Pub/Sub payload per forcedotcom/pub-sub-api CDCBitMapExpansionExample
    # and Pub/Sub guide "Event Deserialization Considerations" (every field present,
    # unchanged ones null; changedFields/nulledFields as hex bitmaps, "N-0x.." for the
    # compound field at position N; dates as epoch ms, crm-webhooks.md S7).
    fields = load("opportunity_change_event_avro_fields.json")
    change = deal(
        parse_cdc(
            load("pubsub_opportunity_update_bitmap.json"), field_lists={"Opportunity": fields}
        )
    )
    assert change.op == "updated"
    assert change.fields == {
        "stage": "Closed Lost",
        "amount": "1234.56",
        "close_date": "2022-05-31",
        "forecast_category": "omitted",
        "status": "lost",
    }
    assert change.properties == {
        "Probability": "0.0",
        "NextStep": None,
        "Delivery_Location__c": {"Latitude__s": "48.8566", "Longitude__s": None},
    }


def test_bitmap_bit_order_matches_forcedotcom_example() -> None:
    # Shape: the bitmap "0x650004E0" from forcedotcom/pub-sub-api python/util/README.md,
    # over a synthetic 32-field schema whose fields are all non-null, so only decoding
    # decides what comes out.
    bitmap = "0x650004E0"
    names = ["ChangeEventHeader", *(f"F{i}__c" for i in range(1, 32))]
    payload: dict[str, Any] = {name: f"v{n}" for n, name in enumerate(names) if n}
    payload["ChangeEventHeader"] = {
        "entityName": "Opportunity",
        "recordIds": [OPPORTUNITY],
        "changeType": "UPDATE",
        "changeOrigin": "",
        "transactionKey": "0000aaaa-bbbb-cccc-dddd-eeeeffff0000",
        "sequenceNumber": 1,
        "commitTimestamp": 1725358500000,
        "commitNumber": 1,
        "commitUser": "0055w00000BhqR0AAJ",
        "nulledFields": [],
        "diffFields": [],
        "changedFields": [bitmap],
    }
    # Reference decoding as in ChangeEventHeaderUtility.py: the binary string of the hex
    # digits, reversed, has a 1 at each changed field's position.
    binary = "".join(f"{int(d, 16):04b}" for d in bitmap[2:])[::-1]
    expected = {names[i] for i, bit in enumerate(binary) if bit == "1"}
    change = deal(parse_cdc(payload, field_lists={"Opportunity": names}))
    assert set(change.properties) == expected
    assert len(expected) == 8  # 0x650004E0 has eight bits set


def test_bitmap_without_field_list_asks_to_refetch() -> None:
    # Shape: the decoded Pub/Sub payload fixture, with no Avro field list configured.
    change = only(parse_cdc(load("pubsub_opportunity_update_bitmap.json")))
    assert isinstance(change, ResyncRequest)
    assert change.crm_ids == (OPPORTUNITY,)
    assert "bitmap" in change.reason


def test_bitmap_beyond_a_stale_field_list_asks_to_refetch() -> None:
    # Shape: the decoded Pub/Sub payload fixture against a field list missing its tail.
    fields = load("opportunity_change_event_avro_fields.json")[:10]
    change = only(
        parse_cdc(
            load("pubsub_opportunity_update_bitmap.json"), field_lists={"Opportunity": fields}
        )
    )
    assert isinstance(change, ResyncRequest)
    assert change.crm_ids == (OPPORTUNITY,)


# --- CDC: envelopes, batches, origin ---------------------------------------------------


def test_eventbridge_appflow_shape_equals_cometd_shape() -> None:
    # Shape: EventBridge partner event from AppFlow per awsdocs/amazon-eventbridge-user-
    # guide eb-saas-salesforce.md (payload directly in `detail`, crm-webhooks.md S11).
    cometd = parse_cdc(load("cdc_cometd_opportunity_update_stage.json"))
    appflow = parse_cdc(load("cdc_eventbridge_appflow_opportunity_update_stage.json"))
    assert appflow == cometd
    assert deal(appflow).fields["stage"] == "Closed Won"


def test_eventbridge_relay_payload_in_detail_payload_equals_cometd_shape() -> None:
    # Shape: the Event Relay form `detail: {payload, schemaId}` named in this connector's
    # brief; not verified against Salesforce's Event Relay docs (see fixtures README).
    cometd_message = load("cdc_cometd_opportunity_update_stage.json")
    relay = {
        "version": "0",
        "id": "2f0b5a3e-9f0c-4b8e-8d1a-6c2e4b7a9d10",
        "detail-type": "OpportunityChangeEvent",
        "source": "aws.partner/salesforce.com/00D5w000004qGTOEA2/0YL5w0000004DfgGAE",
        "account": "364228160620",
        "time": "2024-09-10T14:02:11Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "payload": copy.deepcopy(cometd_message["data"]["payload"]),
            "schemaId": cometd_message["data"]["schema"],
        },
    }
    assert parse_cdc(relay) == parse_cdc(cometd_message)


def test_bare_payload_equals_cometd_shape() -> None:
    # Shape: the payload alone, as a Pub/Sub client decodes it (CDC guide, message
    # structure: "the received event... decode the payload").
    message = load("cdc_cometd_opportunity_update_stage.json")
    assert parse_cdc(message["data"]["payload"]) == parse_cdc(message)


def test_batch_list_and_events_wrapper_keep_order() -> None:
    # Shape: fixtures as received (CometD, AppFlow EventBridge, CometD gap), in one array
    # and in {"events": [...]}.
    items = [
        load("cdc_cometd_opportunity_create.json"),
        load("cdc_eventbridge_appflow_opportunity_update_stage.json"),
        load("cdc_cometd_opportunity_gap_update.json"),
    ]
    changes = parse_cdc(items)
    assert [type(c).__name__ for c in changes] == ["DealChange", "DealChange", "ResyncRequest"]
    first, second = changes[0], changes[1]
    assert isinstance(first, DealChange)
    assert isinstance(second, DealChange)
    assert (first.op, second.op) == ("created", "updated")
    assert parse_cdc({"events": items}) == changes
    assert parse_cdc([]) == []


def test_own_client_changes_are_skipped() -> None:
    # Shape: changeOrigin "com/salesforce/api/rest/61.0;client=salesops-sync" per CDC
    # header reference (`client=` is the API client that made the change).
    message = load("cdc_cometd_opportunity_create.json")
    assert parse_cdc(message, own_client_ids=frozenset({"salesops-sync"})) == []
    assert len(parse_cdc(message, own_client_ids=frozenset({"someone-else"}))) == 1


def test_own_client_match_ignores_trailing_slash() -> None:
    # Shape: AWS's AppFlow example, whose changeOrigin ends "client=SfdcInternalAPI/".
    event = load("eventbridge_appflow_account_update.json")
    assert parse_cdc(event, own_client_ids=frozenset({"SfdcInternalAPI"})) == []


def test_only_skipped_event_of_a_batch_is_dropped() -> None:
    # Shape: two CometD fixtures; only the create carries our client id.
    own = frozenset({"salesops-sync"})
    items = [load("cdc_cometd_opportunity_create.json"), load("cdc_cometd_opportunity_delete.json")]
    change = deal(parse_cdc(items, own_client_ids=own))
    assert change.op == "deleted"


def test_unknown_entity_is_unsupported_naming_it() -> None:
    # Shape: AccountChangeEvent from AWS's AppFlow example (eb-saas-salesforce.md).
    change = only(parse_cdc(load("eventbridge_appflow_account_update.json")))
    assert isinstance(change, Unsupported)
    assert "Account" in change.reason
    assert change.item["detail"]["Region__c"] == "America"


def test_non_change_cometd_message_is_unsupported() -> None:
    # Shape: a platform event CometD message per Platform Events guide "Subscribe with
    # CometD" (payload without ChangeEventHeader; Decimal becomes an exact string).
    message = {
        "data": {
            "schema": "dffQ2QLzDNHqwB8_sHMxdA",
            "payload": {"CreatedDate": "2017-04-09T18:31:40Z", "Ink_Percentage__c": Decimal("0.2")},
            "event": {"replayId": 2},
        },
        "channel": "/event/Low_Ink__e",
    }
    change = only(parse_cdc(message))
    assert isinstance(change, Unsupported)
    assert "/event/Low_Ink__e" in change.reason
    assert change.item["data"]["payload"]["Ink_Percentage__c"] == "0.2"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        42,
        {"hello": "world"},
        [{"hello": "world"}],
        [3],
        {"events": "nope"},
    ],
)
def test_a_body_that_is_no_change_event_is_rejected(body: Any) -> None:
    with pytest.raises(CdcError):
        parse_cdc(body)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("recordIds", [], "recordIds"),
        ("recordIds", ["not an id!"], "recordIds[0]"),
        ("commitTimestamp", "yesterday", "commitTimestamp"),
        ("sequenceNumber", None, "sequenceNumber"),
        ("transactionKey", "", "transactionKey"),
        ("changedFields", "StageName", "changedFields"),
    ],
)
def test_a_malformed_header_is_rejected_with_where(name: str, value: Any, message: str) -> None:
    # Shape: the CometD UPDATE fixture with one header field broken.
    body = load("cdc_cometd_opportunity_update_stage.json")
    header(body)[name] = value
    with pytest.raises(CdcError, match=re.escape(message)):
        parse_cdc(body)


# --- CDC: exact numbers ----------------------------------------------------------------


def test_64_bit_commit_number_parses_exactly_and_changes_nothing() -> None:
    # Shape: commitNumber 1725357365187780609 as in the real capture WorkPuma/vivaeve
    # s15Payload.dwl (crm-webhooks.md S16: it loses precision through a double).
    raw = text("cdc_cometd_opportunity_create.json")
    message = json.loads(raw, parse_float=Decimal)
    assert header(message)["commitNumber"] == 1725357365187780609
    assert float(1725357365187780609) != 1725357365187780609  # a double would change it
    expected = parse_cdc(message)
    huge = 2**64 + 7  # beyond even a signed 64-bit long
    bigger = json.loads(raw.replace("1725357365187780609", str(huge)), parse_float=Decimal)
    assert header(bigger)["commitNumber"] == huge
    assert parse_cdc(bigger) == expected
    assert deal(expected).event_key.startswith("sfcdc:0000a62a-")


def test_commit_number_is_never_converted_to_float() -> None:
    # Shape: the CometD CREATE fixture with a commitNumber that refuses float conversion.
    class NoFloat(int):
        def __float__(self) -> float:
            raise AssertionError("commitNumber was converted to float")

    message = load("cdc_cometd_opportunity_create.json")
    header(message)["commitNumber"] = NoFloat(2**63 + 1)
    assert deal(parse_cdc(message)).op == "created"


def test_amount_from_decimal_is_exact_and_float_is_refused() -> None:
    # Shape: the CometD CREATE fixture with Amount as parse_float=Decimal gives it, then
    # as a float (a body parsed the wrong way).
    message = load("cdc_cometd_opportunity_create.json")
    message["data"]["payload"]["Amount"] = Decimal("1234.56")
    amount = deal(parse_cdc(message)).fields["amount"]
    assert amount == "1234.56"
    assert isinstance(amount, str)
    message["data"]["payload"]["Amount"] = 1234.56
    with pytest.raises(CdcError, match="float"):
        parse_cdc(message)


def test_event_key_of_a_huge_transaction_key_stays_short_and_stable() -> None:
    # Shape: the CometD CREATE fixture with an implausibly long transactionKey.
    message = load("cdc_cometd_opportunity_create.json")
    header(message)["transactionKey"] = "x" * 400
    first = deal(parse_cdc(message)).event_key
    assert len(first) < 256
    assert deal(parse_cdc(copy.deepcopy(message))).event_key == first


# --- CDC: activities -------------------------------------------------------------------


def test_task_call_is_a_call_linked_to_its_deal() -> None:
    # Shape: TaskChangeEvent CREATE over CometD (CDC guide message structure; Task fields
    # per Object Reference, Task: TaskSubtype, WhatId, ActivityDate).
    change = only(parse_cdc(load("cdc_cometd_task_create.json")))
    assert isinstance(change, ActivityChange)
    assert change.kind == "call"
    assert change.crm_id == "00T5w00004XyZaBEAV"
    assert change.deal_crm_id == OPPORTUNITY
    assert change.account_id == "0015w00002BFDeLAAX"
    assert change.rep_crm_id == "0055w00000BhqR0AAJ"
    assert change.occurred_at == datetime(2024, 9, 4, tzinfo=UTC)
    assert change.properties["CallDurationInSeconds"] == 312
    assert "LastModifiedDate" not in change.properties


@pytest.mark.parametrize(
    ("subtype", "kind"), [("Email", "email"), ("Task", "task"), (None, "task")]
)
def test_task_kind_follows_its_subtype(subtype: str | None, kind: str) -> None:
    # Shape: the TaskChangeEvent fixture with another TaskSubtype.
    message = load("cdc_cometd_task_create.json")
    message["data"]["payload"]["TaskSubtype"] = subtype
    change = only(parse_cdc(message))
    assert isinstance(change, ActivityChange)
    assert change.kind == kind


def test_event_is_a_meeting_at_its_start() -> None:
    # Shape: EventChangeEvent CREATE over CometD (Event fields per Object Reference,
    # Event); its WhatId is an Account, so it links to no deal.
    change = only(parse_cdc(load("cdc_cometd_event_create.json")))
    assert isinstance(change, ActivityChange)
    assert change.kind == "meeting"
    assert change.deal_crm_id is None
    assert change.account_id == "0015w00002BFDeLAAX"
    assert change.occurred_at == datetime(2024, 9, 5, 15, 0, tzinfo=UTC)


def test_activity_without_dates_happens_at_commit_time() -> None:
    # Shape: the TaskChangeEvent fixture without ActivityDate and CreatedDate.
    message = load("cdc_cometd_task_create.json")
    del message["data"]["payload"]["ActivityDate"]
    del message["data"]["payload"]["CreatedDate"]
    change = only(parse_cdc(message))
    assert isinstance(change, ActivityChange)
    assert change.occurred_at == at(1725466800000)


def test_activity_is_ordered_by_its_commit_not_its_date() -> None:
    # An activity dated later than its creation (a call planned for tomorrow) must still
    # give way to an edit or a deletion committed before that date.
    change = only(parse_cdc(load("cdc_cometd_task_create.json")))
    assert isinstance(change, ActivityChange)
    assert change.changed_at == at(1725466800000)
    event = map_activity(SF_SOURCE, change=change)
    assert isinstance(event, dict)
    assert event["time"] == "2024-09-04T16:20:00Z"
    assert event["data"]["occurred_at"] == "2024-09-04T00:00:00Z"


def test_task_update_is_refetched() -> None:
    # Shape: TaskChangeEvent UPDATE over CometD, only the changed fields (a task
    # reassigned and rescheduled) plus LastModifiedDate (CDC guide, S2).
    change = only(parse_cdc(load("cdc_cometd_task_update.json")))
    assert change == ResyncRequest(
        "Salesforce Task UPDATE does not carry the whole record; re-fetch the records",
        ("00T5w00004XyZaBEAV",),
        activity_kind="task",
    )


@pytest.mark.parametrize("change_type", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"])
def test_event_gaps_are_refetched_as_meetings(change_type: str) -> None:
    # Shape: the EventChangeEvent fixture as a gap event (header and record ids, S4).
    message = load("cdc_cometd_event_create.json")
    message["data"]["payload"] = {"ChangeEventHeader": header(message)}
    header(message).update(changeType=change_type, recordIds=["00U5w00000AbCdEEAZ"])
    change = only(parse_cdc(message))
    assert isinstance(change, ResyncRequest)
    assert (change.crm_ids, change.activity_kind) == (("00U5w00000AbCdEEAZ",), "meeting")
    assert change_type in change.reason


def test_activity_overflow_refetches_every_record_of_the_entity() -> None:
    # Shape: the Opportunity GAP_OVERFLOW fixture for Task (one per entity, with the dummy
    # id 000000000000000AAA, S4), and a wildcard id from a field type conversion (S1).
    overflow = load("cdc_cometd_opportunity_gap_overflow.json")
    header(overflow)["entityName"] = "Task"
    wildcard = load("cdc_cometd_task_update.json")
    header(wildcard)["recordIds"] = ["00T*"]
    for message in (overflow, wildcard):
        change = only(parse_cdc(message))
        assert isinstance(change, ResyncRequest)
        assert (change.crm_ids, change.activity_kind) == ((), "task")
        assert "re-sync every Task" in change.reason


def test_task_delete_is_a_deletion_per_record() -> None:
    # Shape: TaskChangeEvent DELETE over CometD: the header only (S2); a merged event
    # names several records (S3).
    message = load("cdc_cometd_task_delete.json")
    header(message)["recordIds"] = ["00T5w00004XyZaBEAV", "00T5w00004XyZaCEAV"]
    changes = parse_cdc(message)
    assert changes == [
        ActivityChange(
            crm_id=record_id,
            event_key=f"sfcdc:000a5b6c-7d8e-9f00-1122-334455667788:1:{record_id}",
            occurred_at=at(1725553200000),
            kind="task",
            op="deleted",
        )
        for record_id in ("00T5w00004XyZaBEAV", "00T5w00004XyZaCEAV")
    ]


def test_task_delete_maps_to_a_valid_deleted_event() -> None:
    change = only(parse_cdc(load("cdc_cometd_task_delete.json")))
    assert isinstance(change, ActivityChange)
    event = map_activity(SF_SOURCE, change=change)
    assert isinstance(event, dict)
    validated = validate_event(event)
    assert validated.envelope.type == "com.salesops.activity.deleted.v1"
    assert validated.raw["data"] == {"activity_id": f"salesforce:{ORG}:00T5w00004XyZaBEAV"}
    assert validated.partition_key == f"salesforce:{ORG}:00T5w00004XyZaBEAV"
    assert validated.envelope.time == at(1725553200000)
    assert to_json(change)["op"] == "deleted"
    assert from_json(to_json(change)) == change


def test_unknown_task_change_type_is_unsupported() -> None:
    message = load("cdc_cometd_task_update.json")
    header(message)["changeType"] = "PURGE"
    change = only(parse_cdc(message))
    assert isinstance(change, Unsupported)
    assert "Task changeType 'PURGE' is not handled" in change.reason


def test_our_own_task_delete_is_skipped() -> None:
    message = load("cdc_cometd_task_delete.json")
    assert parse_cdc(message, own_client_ids=frozenset({"SfdcInternalAPI"})) == []


# --- Outbound Messages -----------------------------------------------------------------


def test_outbound_opportunity_and_account() -> None:
    # Shape: notifications() envelope per API guide "Understanding the Outbound Messaging
    # WSDL" (OrganizationId, ActionId, SessionId, EnterpriseUrl, PartnerUrl, Notification
    # {Id, sObject xsi:type="sf:Opportunity"} in urn:sobject.enterprise.soap.sforce.com),
    # fields as in a real sandbox message (CyberPunkDevelopment blog, 2020).
    batch = parse_outbound(text("outbound_two_notifications.xml").encode())
    assert batch.organization_id == "00D5w000004qGTOEA2"
    assert batch.action_id == "04k5w000000TSwMAAW"
    assert len(batch.changes) == 2
    opportunity, account = batch.changes
    assert isinstance(opportunity, DealChange)
    assert opportunity.crm_id == OPPORTUNITY
    assert opportunity.op == "updated"
    assert opportunity.event_key == "sfom:04l5w00005286hAAAQ"
    assert opportunity.occurred_at == datetime(2020, 5, 9, 3, 4, 32, tzinfo=UTC)
    assert opportunity.sequence is None
    assert opportunity.fields == {
        "name": "Backpackers, Inc. (Sample)",
        "account_id": "0015w00002BFDeLAAX",
        "owner_id": "0055w00000BhqR0AAJ",
        "amount": "45000.0",
        "stage": "Negotiation/Review",
        "forecast_category": "best_case",
        "close_date": "2020-07-11",
        "created_at": "2020-05-08T13:40:22+00:00",
        "status": "open",
    }
    assert opportunity.properties["Probability"] == "80.0"
    assert opportunity.properties["NextStep"] is None  # xsi:nil
    for system in ("LastModifiedDate", "SystemModstamp", "IsDeleted", "LastViewedDate", "Id"):
        assert system not in opportunity.properties
    assert isinstance(account, Unsupported)
    assert "Account" in account.reason
    assert account.item["notification_id"] == "04l5w00005286hBAAQ"


def without(xml: str, *names: str) -> str:
    """The Outbound fixture without these sObject fields (the admin did not select them)."""
    for name in names:
        start = xml.index(f"<sf:{name}>")
        xml = xml[:start] + xml[xml.index(f"</sf:{name}>") + len(f"</sf:{name}>") :]
    return xml


def test_outbound_time_falls_back_to_created_date_then_asks_for_a_resync() -> None:
    xml = without(text("outbound_two_notifications.xml"), "LastModifiedDate", "SystemModstamp")
    change = parse_outbound(xml.encode()).changes[0]
    assert isinstance(change, DealChange)
    assert change.occurred_at == datetime(2020, 5, 8, 13, 40, 22, tzinfo=UTC)
    untimed, account = parse_outbound(without(xml, "CreatedDate").encode()).changes
    # Its fields cannot be ordered against the deal's other changes: the record is read
    # back (stamped with its LastModifiedDate) instead, and the other notification stands.
    assert isinstance(untimed, ResyncRequest)
    assert untimed.crm_ids == ("0065w000023STAmAAO",)
    assert "04l5w00005286hAAAQ" in untimed.reason
    assert "LastModifiedDate" in untimed.reason
    assert isinstance(account, Unsupported)


def test_one_unusable_notification_never_costs_the_others_their_ack() -> None:
    xml = text("outbound_two_notifications.xml")
    bad_date = xml.replace("<sf:LastModifiedDate>", "<sf:LastModifiedDate>not a date", 1)
    bad_id = xml.replace("<sf:Id>0065w000023STAmAAO</sf:Id>", "<sf:Id>no/such id</sf:Id>")
    no_id = xml.replace("<Id>04l5w00005286hAAAQ</Id>", "")
    resync, _ = parse_outbound(bad_date.encode()).changes
    assert isinstance(resync, ResyncRequest)
    assert "not an ISO datetime" in resync.reason
    for body, reason in ((bad_id, "no valid sf:Id"), (no_id, "has no Id")):
        first, second = parse_outbound(body.encode()).changes
        assert isinstance(first, Unsupported)
        assert reason in first.reason
        assert isinstance(second, Unsupported)
        assert "Account" in second.reason


def test_outbound_without_organization_id_is_rejected() -> None:
    # Shape: the Outbound fixture with OrganizationId removed.
    xml = text("outbound_two_notifications.xml").replace(
        "<OrganizationId>00D5w000004qGTOEA2</OrganizationId>", ""
    )
    with pytest.raises(OutboundError, match="OrganizationId"):
        parse_outbound(xml.encode())


def test_outbound_over_100_notifications_is_rejected() -> None:
    # Shape: the Outbound fixture with its Account notification repeated past the WSDL's
    # maxOccurs="100".
    xml = text("outbound_two_notifications.xml")
    start = xml.rindex("<Notification>")
    end = xml.rindex("</Notification>") + len("</Notification>")
    xml = xml[:end] + xml[start:end] * 100 + xml[end:]
    with pytest.raises(OutboundError, match="at most 100"):
        parse_outbound(xml.encode())


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<notifications/>",
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
    ],
)
def test_outbound_that_is_no_notifications_envelope_is_rejected(body: bytes) -> None:
    with pytest.raises(OutboundError):
        parse_outbound(body)


def test_outbound_malformed_xml_is_rejected() -> None:
    # Shape: an Outbound envelope cut off mid-element.
    with pytest.raises(OutboundError, match="malformed XML"):
        parse_outbound(text("outbound_malformed.xml").encode())


def test_outbound_entity_expansion_bomb_is_refused() -> None:
    # Shape: the "billion laughs" DTD wrapped around an Outbound envelope; a SOAP message
    # may not carry a DTD at all, and defusedxml refuses it before expanding anything.
    with pytest.raises(OutboundError, match="unsafe XML"):
        parse_outbound(text("outbound_entity_bomb.xml").encode())


def test_outbound_with_any_dtd_is_refused() -> None:
    # Shape: the Outbound fixture behind a harmless DOCTYPE: SOAP 1.1 forbids a DTD in a
    # message, so even one without entities is refused.
    xml = text("outbound_two_notifications.xml").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE soapenv:Envelope>',
    )
    with pytest.raises(OutboundError, match="DTDForbidden"):
        parse_outbound(xml.encode())


def test_outbound_external_entity_is_refused() -> None:
    # Shape: an XXE attempt inside an Outbound envelope.
    xml = text("outbound_two_notifications.xml").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    )
    xml = xml.replace("Backpackers, Inc. (Sample)", "&xxe;")
    with pytest.raises(OutboundError, match="unsafe XML"):
        parse_outbound(xml.encode())


def test_outbound_ack_is_the_soap_response_salesforce_expects() -> None:
    # Shape: notificationsResponse {Ack: xsd:boolean} per "Understanding the Outbound
    # Messaging WSDL".
    ack = outbound_ack()
    assert ack == (
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
        b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
    )
    root = SafeET.fromstring(ack)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    found = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body"
        "/{http://soap.sforce.com/2005/09/outbound}notificationsResponse"
        "/{http://soap.sforce.com/2005/09/outbound}Ack"
    )
    assert found is not None
    assert found.text == "true"
    nack = SafeET.fromstring(outbound_ack(ok=False))
    assert nack.findtext(".//{http://soap.sforce.com/2005/09/outbound}Ack") == "false"


def test_outbound_session_id_is_redacted_for_the_archive() -> None:
    live = b"<notifications><SessionId>00D5w!AQ4AQLiveSession</SessionId><Id>1</Id></notifications>"
    prefixed = b"<n><sf:SessionId xmlns:sf='x'>00D!secret</sf:SessionId></n>"
    nil = b'<n><SessionId xsi:nil="true"/></n>'
    assert redact_session_id(live) == (
        b"<notifications><SessionId>[redacted]</SessionId><Id>1</Id></notifications>"
    )
    assert b"secret" not in redact_session_id(prefixed)
    assert redact_session_id(nil) == nil
