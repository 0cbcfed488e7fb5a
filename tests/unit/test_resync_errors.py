"""Re-sync job errors name what was wrong (field, type, length), never the CRM's values:
they are shown to operators, and the answer may come from whoever the URL reached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.pipeline_api.crm.http import CrmResponseError, as_dict, as_list
from services.pipeline_api.crm.hubspot.rest import hubspot_activity, hubspot_change
from services.pipeline_api.crm.pipedrive.rest import pipedrive_change
from services.pipeline_api.crm.salesforce.rest import SalesforceClient, salesforce_change
from services.pipeline_api.crm.values import Unreadable

LEAK = "tok=sk_live_leaked"
FINE = "2026-11-30T09:00:00Z"


@pytest.mark.parametrize(
    ("parse", "record", "field"),
    [
        (hubspot_change, {"id": "1", "properties": {"hs_lastmodifieddate": LEAK}}, "hs_last"),
        (
            hubspot_change,
            {"id": "1", "properties": {"hs_lastmodifieddate": FINE, "amount": LEAK}},
            "amount",
        ),
        (salesforce_change, {"Id": "006", "LastModifiedDate": FINE, "Amount": LEAK}, "Amount"),
        (salesforce_change, {"Id": "006", "LastModifiedDate": FINE, "CloseDate": LEAK}, "Close"),
        (salesforce_change, {"Id": "006", "LastModifiedDate": f"{LEAK}12345"}, "LastModified"),
        (
            pipedrive_change,
            {"id": 7, "update_time": FINE, "expected_close_date": "2026-13-45"},
            "expected_close_date",
        ),
        (pipedrive_change, {"id": 7, "update_time": FINE, "add_time": LEAK}, "add_time"),
    ],
)
def test_an_unreadable_deal_value_is_described_not_echoed(
    parse: Callable[[dict[str, Any]], Any], record: dict[str, Any], field: str
) -> None:
    with pytest.raises(CrmResponseError) as refused:
        parse(record)
    said = str(refused.value)
    assert "cannot be read" in said
    assert field in said
    assert "is not a" in said
    for value in (LEAK, "2026-13-45"):
        assert value not in said


def test_an_unreadable_activity_time_is_described_not_echoed() -> None:
    record = {"id": "5", "properties": {"hs_lastmodifieddate": FINE, "hs_timestamp": LEAK}}
    with pytest.raises(Unreadable) as refused:
        hubspot_activity(record, "call")
    assert str(refused.value) == f"hs_timestamp: a str of {len(LEAK)} chars is not a timestamp"


@pytest.mark.parametrize("check", [as_dict, as_list])
def test_a_body_of_the_wrong_shape_is_described_not_echoed(
    check: Callable[[Any, str, str], Any],
) -> None:
    with pytest.raises(CrmResponseError) as refused:
        check(f"<html>{LEAK}</html>", "HubSpot", "deal")
    assert str(refused.value).endswith(f"but a str of {len(LEAK) + 13} chars")
    assert LEAK not in str(refused.value)


async def test_a_next_records_url_off_the_instance_is_not_echoed() -> None:
    async with httpx.AsyncClient() as http:
        client = SalesforceClient("https://acme.my.salesforce.com", "t", http)
        with pytest.raises(CrmResponseError) as refused:
            client._same_origin(f"https://collector.example/{LEAK}")
    assert "leaves the instance" in str(refused.value)
    assert LEAK not in str(refused.value)
    assert "collector.example" not in str(refused.value)
