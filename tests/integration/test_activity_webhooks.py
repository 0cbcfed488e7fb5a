"""Activities that change or disappear in the CRM, through the real webhook endpoints, the
event log, the broker and the forecast worker down to `forecast.activities`; edits the
webhook cannot describe are re-fetched from a local server shaped like Salesforce's REST
API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Row

from tests.integration.test_webhooks import (
    basic,
    engagement_source,
    fixture,
    pd_event,
    pipedrive,
    put_source,
    send_cdc,
)
from tests.support.fake_crm import FakeCrms, create_app, hubspot_call, salesforce_activity
from tests.support.infra import query, serve_in_loop
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
__all__ = ["pipedrive"]  # the fixture, used by name below

TASK = "00T5w00004XyZaBEAV"
OPPORTUNITY = "0065w000023STAmAAO"
OWNER = "0055w00000BhqR0AAJ"
NEW_OWNER = "0055w00000BhqR1AAJ"


async def activity_when(
    database_url: str, activity_id: str, check: Callable[[Row[Any]], bool]
) -> Row[Any]:
    """The activity's row once the worker has made it pass `check`."""

    async def probe() -> Row[Any] | None:
        rows = await query(
            database_url,
            "SELECT kind, deal_id, rep_id, occurred_at, properties, deleted_at"
            " FROM forecast.activities WHERE activity_id = :id",
            id=activity_id,
        )
        return rows[0] if rows and check(rows[0]) else None

    return await eventually(probe, within=60)


async def test_pipedrive_activity_delete_makes_it_deleted(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str, database_url: str
) -> None:
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    auth = basic("salesops", "pd-pass")
    create = pd_event("v2_activity_create.json", company, id=str(uuid.uuid4()))
    # Due after it is deleted: the deletion must win by when it happened, not the due date.
    create["data"]["due_date"] = "2025-04-30"
    r = await client.post(url, json=create, headers=auth)
    assert r.status_code == 200, r.text
    activity_id = f"pipedrive:{company}:55"
    logged = await activity_when(database_url, activity_id, lambda row: True)
    assert (logged.kind, logged.rep_id, logged.deleted_at) == ("call", "rep-cy", None)

    delete = pd_event("v2_activity_delete.json", company, id=str(uuid.uuid4()))
    r = await client.post(url, json=delete, headers=auth)
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["unsupported"]) == (1, 0)
    gone = await activity_when(database_url, activity_id, lambda row: row.deleted_at is not None)
    assert gone.deleted_at.isoformat() == "2025-04-17T09:00:00+00:00"
    assert (gone.kind, gone.rep_id) == ("call", "rep-cy"), "kept for audit"


def salesforce_source(org: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"sf-act-{org.lower()}",
        "kind": "salesforce",
        "account_id": org,
        "secrets": {"current": "sf-relay-secret"},
        "mapping": {"owners": {OWNER: "rep-di", NEW_OWNER: "rep-eve"}},
        **extra,
    }


async def test_salesforce_task_delete_makes_it_deleted(
    client: httpx.AsyncClient, stack_url: str, database_url: str
) -> None:
    org = "00D" + uuid.uuid4().hex[:12].upper()
    source = salesforce_source(org)
    await put_source(client, source)
    url = f"{stack_url}/v1/webhooks/salesforce/cdc"
    r = await send_cdc(client, url, source["id"], fixture("salesforce/cdc_cometd_task_create.json"))
    assert r.status_code == 200, r.text
    activity_id = f"salesforce:{org}:{TASK}"
    await activity_when(database_url, activity_id, lambda row: True)

    r = await send_cdc(client, url, source["id"], fixture("salesforce/cdc_cometd_task_delete.json"))
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["unsupported"]) == (1, 0)
    gone = await activity_when(database_url, activity_id, lambda row: row.deleted_at is not None)
    assert gone.deleted_at.isoformat() == "2024-09-05T16:20:00+00:00"
    assert (gone.kind, gone.deal_id, gone.rep_id) == (
        "call",
        f"salesforce:{org}:{OPPORTUNITY}",
        "rep-di",
    )


async def test_salesforce_task_update_refetches_the_task_and_a_gap_delete_deletes_it(
    client: httpx.AsyncClient, stack_url: str, database_url: str
) -> None:
    crms = FakeCrms()
    # The Task as Salesforce has it after the UPDATE: reassigned and moved to the 6th.
    crms.salesforce.engagements[f"Task/{TASK}"] = salesforce_activity(
        "Task",
        TASK,
        Subject="Call",
        TaskSubtype="Call",
        WhatId=OPPORTUNITY,
        AccountId="0015w00002BFDeLAAX",
        OwnerId=NEW_OWNER,
        ActivityDate="2024-09-06",
        Status="Completed",
        CallDurationInSeconds=312,
        CreatedDate="2024-09-04T16:20:00.000+0000",
        LastModifiedDate="2024-09-05T09:12:00.000+0000",
        SystemModstamp="2024-09-05T09:12:00.000+0000",
    )
    org = "00D" + uuid.uuid4().hex[:12].upper()
    async with serve_in_loop(create_app(crms)) as crm_url:
        source = salesforce_source(org, api_base_url=crm_url, api_token="sf-token")
        await put_source(client, source)
        url = f"{stack_url}/v1/webhooks/salesforce/cdc"
        create = fixture("salesforce/cdc_cometd_task_create.json")
        assert (await send_cdc(client, url, source["id"], create)).status_code == 200
        activity_id = f"salesforce:{org}:{TASK}"
        first = await activity_when(database_url, activity_id, lambda row: True)
        assert (first.rep_id, first.occurred_at.date().isoformat()) == ("rep-di", "2024-09-04")

        update = fixture("salesforce/cdc_cometd_task_update.json")
        r = await send_cdc(client, url, source["id"], update)
        assert r.status_code == 200, r.text
        (job,) = r.json()["resync_jobs"]
        moved = await activity_when(database_url, activity_id, lambda row: row.rep_id == "rep-eve")
        assert moved.occurred_at.isoformat() == "2024-09-06T00:00:00+00:00"
        assert moved.deal_id == f"salesforce:{org}:{OPPORTUNITY}"
        assert moved.deleted_at is None
        fetched = f"/services/data/v60.0/sobjects/Task/{TASK}"
        assert fetched in [entry.path for entry in crms.salesforce.log]

        async def finished() -> dict[str, Any] | None:
            state: dict[str, Any] = (
                await client.get(f"/v1/sources/{source['id']}/resync/{job}")
            ).json()
            return state if state["status"] in ("done", "failed") else None

        state = await eventually(finished)
        assert (state["status"], state["progress"]) == ("done", 1)

        # Salesforce lost the DELETE (a gap): the re-fetch finds the Task in the recycle bin.
        crms.salesforce.engagements[f"Task/{TASK}"]["IsDeleted"] = True
        gap = fixture("salesforce/cdc_cometd_task_update.json")
        payload = gap["data"]["payload"]
        payload["ChangeEventHeader"].update(changeType="GAP_DELETE", transactionKey="tx-gap")
        gap["data"]["payload"] = {"ChangeEventHeader": payload["ChangeEventHeader"]}
        r = await send_cdc(client, url, source["id"], gap)
        assert len(r.json()["resync_jobs"]) == 1
        gone = await activity_when(
            database_url, activity_id, lambda row: row.deleted_at is not None
        )
    assert gone.rep_id == "rep-eve", "the last known state is kept"


async def test_hubspot_engagement_edit_delete_and_restore(
    client: httpx.AsyncClient, stack_url: str, database_url: str
) -> None:
    crms = FakeCrms()
    call = hubspot_call("9101")
    crms.hubspot.engagements["calls/9101"] = call
    async with serve_in_loop(create_app(crms)) as crm_url:
        portal, sender = await engagement_source(client, stack_url, crm_url)
        activity_id = f"hubspot:{portal}:9101"
        base = {"subscriptionId": 2, "appId": 3, "attemptNumber": 0, "objectTypeId": "0-48"}

        async def send(event_id: int, at_ms: int, kind: str, **extra: Any) -> None:
            item = {**base, "eventId": event_id, "occurredAt": at_ms, "objectId": 9101}
            r = await sender.send([{**item, "subscriptionType": kind, **extra}])
            assert r.status_code == 200, r.text

        await send(1, 1_780_307_400_000, "object.creation")
        await activity_when(database_url, activity_id, lambda row: row.rep_id == "rep-ana")

        # Reassigned and retitled in HubSpot: one propertyChange names one property only.
        call["properties"] |= {
            "hubspot_owner_id": "75761596",
            "hs_call_title": "Discovery call (rescheduled)",
            "hs_lastmodifieddate": "2026-06-02T08:00:00Z",
        }
        await send(
            2,
            1_780_390_800_000,
            "object.propertyChange",
            propertyName="hubspot_owner_id",
            propertyValue="75761596",
        )
        edited = await activity_when(database_url, activity_id, lambda row: row.rep_id == "rep-bo")
        assert edited.properties == {"hs_call_title": "Discovery call (rescheduled)"}

        await send(3, 1_780_394_400_000, "object.deletion", changeFlag="DELETED")
        await activity_when(database_url, activity_id, lambda row: row.deleted_at is not None)

        # Restored from the recycle bin: HubSpot serves it again, modified later.
        call["properties"]["hs_lastmodifieddate"] = "2026-06-02T10:00:00Z"
        await send(4, 1_780_398_000_000, "object.restore", changeFlag="RESTORED")
        restored = await activity_when(
            database_url, activity_id, lambda row: row.deleted_at is None
        )
    assert restored.rep_id == "rep-bo"
    assert restored.kind == "call"
