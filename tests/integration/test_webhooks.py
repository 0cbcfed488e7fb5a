"""CRM webhooks through the real stack: signed deliveries in the CRMs' published shapes,
in realistic sequences (create, updates out of order, duplicates, merge, delete), down to
deal state and history; plus authentication failures, parking and replay, and re-sync."""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.pipeline_api.accounts import merges as account_merges
from services.pipeline_api.accounts import repository
from services.pipeline_api.accounts import sweep as merge_sweep
from services.pipeline_api.crm.changes import DealChange
from services.pipeline_api.crm.hubspot.signatures import hubspot_v3
from services.pipeline_api.crm.salesforce.signatures import relay_signature
from services.pipeline_api.events.event_log import EventLogWriter, LogRow
from services.pipeline_api.models import AccountAlias
from services.pipeline_api.sources.repository import upsert_source
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks.ingest import to_row
from shared.db import create_sessionmaker, driver_dsn
from shared.embedded import free_port
from shared.events import MAX_FUTURE
from tests.support.fake_crm import FakeCrms, create_app, hubspot_call, hubspot_deal
from tests.support.infra import query, serve_in_loop
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STAGE = "1f4f1ec1-8174-49f3-a112-4eaa4748e38e"


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def unique_account() -> str:
    return str(uuid.uuid4().int % 10**9)


async def put_source(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.put(f"/v1/sources/{body['id']}", json=body)
    assert r.status_code in (200, 201), r.text


async def deal(client: httpx.AsyncClient, deal_id: str) -> dict[str, Any] | None:
    r = await client.get(f"/v1/deals/{deal_id}")
    return r.json() if r.status_code == 200 else None


async def wait_for(client: httpx.AsyncClient, deal_id: str, **expected: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await deal(client, deal_id)
        if found and all(found.get(k) == v for k, v in expected.items()):
            return found
        return None

    return await eventually(probe, within=60)


async def history_of(client: httpx.AsyncClient, deal_id: str, *, versions: int) -> list[Any]:
    """The deal's history once it has `versions` versions: a final state can be reached
    before a late, older event (sent last on purpose) has been folded in."""

    async def probe() -> list[Any] | None:
        found = (await client.get(f"/v1/deals/{deal_id}/history")).json()["versions"]
        return found if len(found) >= versions else None

    return await eventually(probe, within=60)


# --- HubSpot ---------------------------------------------------------------------------


class HubSpot:
    def __init__(self, client: httpx.AsyncClient, base: str, portal: str, secret: str) -> None:
        self.client, self.url, self.portal, self.secret = (
            client,
            f"{base}/v1/webhooks/hubspot",
            portal,
            secret,
        )

    def batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**i, "portalId": int(self.portal)} for i in items]

    async def send(
        self,
        items: list[dict[str, Any]],
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        raw: bytes | None = None,
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(self.batch(items)).encode()
        ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
        sig = hubspot_v3(secret or self.secret, "POST", self.url, body.decode(), ts)
        return await self.client.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-HubSpot-Signature-v3": sig,
                "X-HubSpot-Request-Timestamp": ts,
                "Authorization": "",
            },
        )


@pytest.fixture
async def hubspot(client: httpx.AsyncClient, stack_url: str) -> HubSpot:
    portal = unique_account()
    await put_source(
        client,
        {
            "id": f"hs-{portal}",
            "kind": "hubspot",
            "account_id": portal,
            "secrets": {"current": "hs-secret-new", "previous": "hs-secret-old"},
            "mapping": {
                "stages": {
                    STAGE: {"stage": "discovery", "pipeline": "sales"},
                    "closedwon": {"stage": "won"},
                },
                "owners": {"75761595": "rep-ana"},
                "default_currency": "EUR",
                "keep_properties": ["seats"],
            },
        },
    )
    return HubSpot(client, stack_url, portal, "hs-secret-new")


def prop(deal_id: int, name: str, value: str, at: int, event_id: int) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 6547123,
        "appId": 39522895,
        "occurredAt": at,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        "objectId": deal_id,
        "propertyName": name,
        "propertyValue": value,
        "changeSource": "CRM_UI",
    }


async def test_hubspot_sequence_builds_the_right_deal_and_history(hubspot: HubSpot) -> None:
    batch = fixture("hubspot/deal_creation_batch.json")
    r = await hubspot.send(batch)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 7
    deal_id = f"hubspot:{hubspot.portal}:332507367156"
    created = await wait_for(hubspot.client, deal_id, owner_id="rep-ana", stage="discovery")
    assert (created["name"], created["amount"], created["currency"]) == (
        "Acme - 40 seats",
        "2000",
        "EUR",
    )

    t0 = batch[0]["occurredAt"]
    later = prop(332507367156, "amount", "3500", t0 + 60_000, 90)
    earlier = prop(332507367156, "amount", "2500", t0 + 30_000, 91)
    won = prop(332507367156, "dealstage", "closedwon", t0 + 90_000, 92)
    assert (await hubspot.send([later, won])).json()["accepted"] == 2
    retried = {**later, "attemptNumber": 1}
    out_of_order = await hubspot.send([earlier, retried])
    assert out_of_order.json()["accepted"] == 1
    assert out_of_order.json()["duplicates"] == 1
    final = await wait_for(hubspot.client, deal_id, status="won", amount="3500")
    assert final["stage"] == "won"

    # The final state does not wait for the late 2500: wait until history has it.
    async def history_with_late_amount() -> list[Any] | None:
        versions = (await hubspot.client.get(f"/v1/deals/{deal_id}/history")).json()["versions"]
        return versions if "2500" in [v["amount"] for v in versions] else None

    history = await eventually(history_with_late_amount, within=60)
    amounts = [v["amount"] for v in history]
    assert amounts[-3:] == ["2500", "3500", "3500"], "the late 2500 sits before 3500 in history"


async def test_every_accepted_request_is_archived_as_it_arrived(
    hubspot: HubSpot, database_url: str
) -> None:
    """Fully mapped requests are archived by the event log's own statement; a request of
    duplicates only is still kept, since it is what the CRM sent."""
    t = int(time.time() * 1000)
    first = json.dumps(hubspot.batch([prop(801, "amount", "10", t, 1)])).encode()
    again = json.dumps(hubspot.batch([prop(801, "amount", "10", t, 1)]), indent=1).encode()
    for body, accepted in ((first, 1), (again, 0)):
        r = await hubspot.send([], raw=body)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == accepted
    archived = await query(
        database_url,
        "SELECT body, headers FROM pipeline.webhook_requests WHERE source_id = :s ORDER BY id",
        s=f"hs-{hubspot.portal}",
    )
    assert [bytes(row.body) for row in archived] == [first, again]
    headers = archived[0].headers
    assert "x-hubspot-signature-v3" in headers
    assert "authorization" not in headers


async def test_hubspot_merge_and_delete(hubspot: HubSpot) -> None:
    base = {"appId": 1, "subscriptionId": 7, "attemptNumber": 0, "changeSource": "CRM_UI"}
    t = 1_782_000_000_000
    await hubspot.send([prop(501, "dealname", "Left", t, 1), prop(502, "dealname", "Right", t, 2)])
    left = f"hubspot:{hubspot.portal}:501"
    await wait_for(hubspot.client, left, name="Left")
    merge = {
        **base,
        "eventId": 3,
        "occurredAt": t + 1000,
        "subscriptionType": "deal.merge",
        "objectId": 502,
        "primaryObjectId": 502,
        "mergedObjectIds": [501],
        "newObjectId": 502,
        "numberOfPropertiesMoved": 1,
    }
    r = await hubspot.send([merge])
    assert len(r.json()["resync_jobs"]) == 1, "a merge asks for the survivor's properties"
    gone = await wait_for(hubspot.client, left, deleted=True)
    assert gone["properties"]["merged_into"] == f"hubspot:{hubspot.portal}:502"
    deletion = {
        **base,
        "eventId": 4,
        "occurredAt": t + 2000,
        "subscriptionType": "deal.deletion",
        "objectId": 502,
    }
    await hubspot.send([deletion])
    await wait_for(hubspot.client, f"hubspot:{hubspot.portal}:502", deleted=True)


async def test_hubspot_authentication_and_bad_input(hubspot: HubSpot) -> None:
    item = prop(600, "dealname", "x", 1_782_000_000_000, 1)
    wrong = await hubspot.send([item], secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "The request could not be authenticated."
    assert "secret" not in wrong.text.replace("The request", "")
    stale = await hubspot.send([item], timestamp=int(time.time() * 1000) - 301_000)
    assert stale.status_code == 401
    rotated = await hubspot.send([item], secret="hs-secret-old")
    assert rotated.status_code == 200, "the previous secret still works during rotation"
    unsigned = await hubspot.client.post(hubspot.url, json=[item], headers={"Authorization": ""})
    assert unsigned.status_code == 401
    other_portal = await hubspot.send(
        [{**item, "portalId": 1}], raw=json.dumps([{**item, "portalId": 1}]).encode()
    )
    assert other_portal.status_code == 401, "an unknown portal answers as bad credentials"
    assert other_portal.json() == wrong.json()
    malformed = await hubspot.send([], raw=b"[{not json")
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    huge = await hubspot.send([], raw=b"[" + b" " * (6 * 1024 * 1024) + b"]")
    assert huge.status_code == 413


async def test_unsupported_items_are_acknowledged_and_dead_lettered(hubspot: HubSpot) -> None:
    contact = {
        "eventId": 5,
        "subscriptionId": 1,
        "appId": 1,
        "occurredAt": 1_782_000_000_000,
        "subscriptionType": "contact.creation",
        "objectId": 17001,
        "attemptNumber": 0,
    }
    r = await hubspot.send([contact])
    assert r.status_code == 200
    assert r.json()["unsupported"] == 1
    dlq = (await hubspot.client.get("/v1/dlq", params={"source_id": f"hs-{hubspot.portal}"})).json()
    assert any("not handled" in i["reason"] and not i["replayable"] for i in dlq["items"])


async def test_unmapped_owner_is_parked_then_replayed_when_mapped(
    hubspot: HubSpot, database_url: str
) -> None:
    t = 1_782_100_000_000
    r = await hubspot.send(
        [prop(700, "dealname", "Parked deal", t, 1), prop(700, "hubspot_owner_id", "999", t, 2)]
    )
    assert r.json()["parked"] == 1
    deal_id = f"hubspot:{hubspot.portal}:700"
    await wait_for(hubspot.client, deal_id, name="Parked deal", owner_id=None)
    items = (
        await hubspot.client.get("/v1/dlq", params={"source_id": f"hs-{hubspot.portal}"})
    ).json()["items"]
    assert any("owner '999' is not mapped" in i["reason"] and i["replayable"] for i in items)

    source = (await hubspot.client.get(f"/v1/sources/hs-{hubspot.portal}")).json()
    assert "secrets" not in source
    assert source["secrets_set"] == ["current", "previous"]
    source["mapping"]["owners"]["999"] = "rep-bo"
    body = {k: source[k] for k in ("id", "kind", "account_id", "mapping", "enabled")}
    await put_source(hubspot.client, body)  # secrets omitted: kept
    await wait_for(hubspot.client, deal_id, owner_id="rep-bo")
    left = (
        await hubspot.client.get("/v1/dlq", params={"source_id": f"hs-{hubspot.portal}"})
    ).json()["items"]
    assert not [i for i in left if "'999'" in i["reason"]]
    again = await hubspot.send([prop(701, "dealname", "after rotation kept", t, 3)])
    assert again.status_code == 200, "stored secrets survived a PUT without them"

    bodies = [
        row.body
        for row in await query(
            database_url,
            "SELECT body FROM pipeline.webhook_requests WHERE source_id = :s ORDER BY id",
            s=f"hs-{hubspot.portal}",
        )
    ]
    assert any(b"Parked deal" in bytes(b) for b in bodies), "the raw body is kept for audit"


# --- Pipedrive -------------------------------------------------------------------------


@pytest.fixture
async def pipedrive(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    company = unique_account()
    await put_source(
        client,
        {
            "id": f"pd-{company}",
            "kind": "pipedrive",
            "account_id": company,
            "secrets": {"current": "pd-pass", "basic_user": "salesops"},
            "mapping": {
                "stages": {"1": {"stage": "qualified"}, "3": {"stage": "proposal"}},
                "owners": {"123123": "rep-cy"},
            },
        },
    )
    return client, company


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def pd_event(template: str, company: str, **meta: Any) -> dict[str, Any]:
    body = copy.deepcopy(fixture(f"pipedrive/{template}"))
    body["meta"].update(company_id=int(company), **meta)
    return dict(body)


async def test_pipedrive_published_create_then_changes_and_merge(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    create = pd_event("v2_deal_create_pipedream.json", company)
    r = await client.post(url, json=create, headers=basic("salesops", "pd-pass"))
    assert r.status_code == 200, r.text
    deal_id = f"pipedrive:{company}:1"
    first = await wait_for(client, deal_id, stage="qualified")
    assert (first["name"], first["amount"], first["currency"], first["owner_id"]) == (
        "Title",
        "2",
        "BRL",
        "rep-cy",
    )
    again = await client.post(
        url,
        json={**create, "meta": {**create["meta"], "attempt": 2}},
        headers=basic("salesops", "pd-pass"),
    )
    assert again.json()["duplicates"] == 1

    wrong = await client.post(url, json=create, headers=basic("salesops", "nope"))
    assert wrong.status_code == 401
    foreign = pd_event("v2_deal_create_pipedream.json", "1")
    assert (
        await client.post(url, json=foreign, headers=basic("salesops", "pd-pass"))
    ).status_code == 401
    garbage = await client.post(
        url,
        content=b"{]",
        headers={**basic("salesops", "pd-pass"), "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400


async def test_pipedrive_delete(pipedrive: tuple[httpx.AsyncClient, str], stack_url: str) -> None:
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    create = pd_event(
        "v2_deal_create_pipedream.json",
        company,
        id=str(uuid.uuid4()),
        entity_id=77,
        timestamp="2023-01-01T00:00:00.000Z",
    )
    create["data"]["id"] = 77
    await client.post(url, json=create, headers=basic("salesops", "pd-pass"))
    delete = pd_event(
        "v2_deal_delete.json",
        company,
        id=str(uuid.uuid4()),
        entity_id=77,
        timestamp="2023-02-01T00:00:00.000Z",
    )
    if delete.get("previous"):
        delete["previous"]["id"] = 77
    r = await client.post(url, json=delete, headers=basic("salesops", "pd-pass"))
    assert r.status_code == 200, r.text
    await wait_for(client, f"pipedrive:{company}:77", deleted=True)


# --- Salesforce ------------------------------------------------------------------------


@pytest.fixture
async def salesforce(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    org = "00D" + uuid.uuid4().hex[:12].upper()
    await put_source(
        client,
        {
            "id": f"sf-{org.lower()}",
            "kind": "salesforce",
            "account_id": org,
            "secrets": {"current": "sf-relay-secret"},
            "mapping": {
                "stages": {
                    "Prospecting": {"stage": "prospecting"},
                    "Closed Won": {"stage": "won"},
                    "Negotiation/Review": {"stage": "negotiation"},
                },
                "owners": {"0055w00000BhqR0AAJ": "rep-di"},
                "multi_currency": True,
            },
        },
    )
    return client, org


async def send_cdc(
    client: httpx.AsyncClient, url: str, source_id: str, body: Any, secret: str = "sf-relay-secret"
) -> httpx.Response:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    return await client.post(
        url,
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Salesops-Source": source_id,
            "X-Salesops-Timestamp": ts,
            "X-Salesops-Signature": "sha256=" + relay_signature(secret, ts, raw),
        },
    )


async def test_salesforce_cdc_create_update_gap_and_auth(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    url = f"{stack_url}/v1/webhooks/salesforce/cdc"
    source_id = f"sf-{org.lower()}"
    create = fixture("salesforce/cdc_cometd_opportunity_create.json")
    r = await send_cdc(client, url, source_id, create)
    assert r.status_code == 200, r.text
    deal_id = f"salesforce:{org}:0065w000023STAmAAO"
    got = await wait_for(client, deal_id, stage="prospecting")
    assert (got["amount"], got["currency"], got["owner_id"], got["status"]) == (
        "45000.5",
        "EUR",
        "rep-di",
        "open",
    )
    assert (await send_cdc(client, url, source_id, create)).json()["duplicates"] == 1
    assert (await send_cdc(client, url, source_id, create, secret="wrong")).status_code == 401
    assert (await send_cdc(client, url, "nope", create)).status_code == 401
    gap = await send_cdc(
        client, url, source_id, fixture("salesforce/cdc_cometd_opportunity_gap_update.json")
    )
    assert gap.status_code == 200
    assert len(gap.json()["resync_jobs"]) == 1


async def test_salesforce_outbound_message_is_acked_and_applied(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    xml = (FIXTURES / "salesforce/outbound_two_notifications.xml").read_text()
    import re

    fixture_org = re.search(r"<OrganizationId>([^<]+)</OrganizationId>", xml)
    assert fixture_org is not None
    body = xml.replace(fixture_org.group(1), org).encode()
    url = f"{stack_url}/v1/webhooks/salesforce/outbound?token=sf-relay-secret"
    r = await client.post(url, content=body, headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    assert "<Ack>true</Ack>" in r.text
    no_token = await client.post(
        url.split("?")[0], content=body, headers={"Content-Type": "text/xml"}
    )
    assert no_token.status_code == 401

    # A source without a secret has nothing to check the token against: refused, not open.
    source = (await client.get(f"/v1/sources/sf-{org.lower()}")).json()
    unsecured_org = "00D" + uuid.uuid4().hex[:12].upper()
    await put_source(
        client,
        {
            "id": f"sf-{unsecured_org.lower()}",
            "kind": "salesforce",
            "account_id": unsecured_org,
            "mapping": source["mapping"],
        },
    )
    unsecured = body.replace(org.encode(), unsecured_org.encode())
    for target in (url.split("?")[0], url.split("?")[0] + "?token="):
        open_door = await client.post(
            target, content=unsecured, headers={"Content-Type": "text/xml"}
        )
        assert open_door.status_code == 401, open_door.text
    bomb = (FIXTURES / "salesforce/outbound_entity_bomb.xml").read_bytes()
    assert (
        await client.post(url, content=bomb, headers={"Content-Type": "text/xml"})
    ).status_code == 400


# --- Re-sync against a local CRM-shaped server ------------------------------------------


async def test_resync_on_demand_fetches_every_deal_with_progress(client: httpx.AsyncClient) -> None:
    crms = FakeCrms()
    crms.hubspot.add(
        *[
            hubspot_deal(
                str(n),
                dealname=f"Fetched {n}",
                amount="10.50",
                dealstage="closedwon",
                pipeline="default",
            )
            for n in range(1, 251)
        ]
    )
    async with serve_in_loop(create_app(crms)) as crm_url:
        portal = unique_account()
        await put_source(
            client,
            {
                "id": f"hs-sync-{portal}",
                "kind": "hubspot",
                "account_id": portal,
                "api_base_url": crm_url,
                "api_token": "hs-token",
                "mapping": {"stages": {"closedwon": {"stage": "won"}}},
            },
        )
        r = await client.post(f"/v1/sources/hs-sync-{portal}/resync", json={})
        assert r.status_code == 202
        job = r.json()

        async def finished() -> dict[str, Any] | None:
            state = (await client.get(f"/v1/sources/hs-sync-{portal}/resync/{job['id']}")).json()
            return state if state["status"] in ("done", "failed") else None

        done = await eventually(finished, within=60)
        assert done["status"] == "done", done
        assert done["progress"] == 250
    fetched = await wait_for(client, f"hubspot:{portal}:250", status="won")
    assert (fetched["name"], fetched["amount"]) == ("Fetched 250", "10.50")


def sf_event(
    template: dict[str, Any],
    *,
    change: str,
    tx: str,
    at_ms: int,
    fields: dict[str, Any],
    changed: list[str] | None = None,
) -> dict[str, Any]:
    """A CDC message in the published CometD shape with its header rewritten."""
    event = copy.deepcopy(template)
    payload = event["data"]["payload"]
    header = payload["ChangeEventHeader"]
    payload.clear()
    payload.update(fields)
    header.update(
        changeType=change,
        transactionKey=tx,
        commitTimestamp=at_ms,
        sequenceNumber=1,
        changedFields=changed or [],
    )
    payload["ChangeEventHeader"] = header
    return dict(event)


async def test_salesforce_sequence_out_of_order_with_delete_and_undelete(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    url = f"{stack_url}/v1/webhooks/salesforce/cdc"
    source_id = f"sf-{org.lower()}"
    create = fixture("salesforce/cdc_cometd_opportunity_create.json")
    t0 = create["data"]["payload"]["ChangeEventHeader"]["commitTimestamp"]
    won = sf_event(
        create,
        change="UPDATE",
        tx="tx-won",
        at_ms=t0 + 60_000,
        fields={
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "ForecastCategoryName": "Closed",
        },
        changed=["StageName", "IsClosed", "IsWon", "ForecastCategoryName"],
    )
    negotiate = sf_event(
        create,
        change="UPDATE",
        tx="tx-neg",
        at_ms=t0 + 30_000,
        fields={"StageName": "Negotiation/Review", "Amount": 50000},
        changed=["StageName", "Amount"],
    )
    for body in ([won, negotiate], create, won):  # newest first, the creation last, a retry
        assert (await send_cdc(client, url, source_id, body)).status_code == 200
    deal_id = f"salesforce:{org}:0065w000023STAmAAO"
    final = await wait_for(client, deal_id, stage="won", amount="50000")
    assert (final["status"], final["forecast_category"]) == ("won", "closed")
    versions = await history_of(client, deal_id, versions=3)
    assert [v["stage"] for v in versions] == ["prospecting", "negotiation", "won"]
    assert [v["amount"] for v in versions] == ["45000.5", "50000", "50000"]

    delete = sf_event(create, change="DELETE", tx="tx-del", at_ms=t0 + 120_000, fields={})
    await send_cdc(client, url, source_id, delete)
    await wait_for(client, deal_id, deleted=True)
    undelete = sf_event(create, change="UNDELETE", tx="tx-undel", at_ms=t0 + 180_000, fields={})
    await send_cdc(client, url, source_id, undelete)
    back = await wait_for(client, deal_id, deleted=False)
    assert back["stage"] == "won"


async def test_pipedrive_sequence_out_of_order_then_merge(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    auth = basic("salesops", "pd-pass")
    create = pd_event(
        "v2_deal_create_pipedream.json", company, id="c-1", timestamp="2025-04-15T15:31:17.000Z"
    )
    stage = pd_event(
        "v2_deal_change_stage.json", company, id="c-3", timestamp="2025-04-15T16:00:00.000Z"
    )
    stage["data"].update(stage_id=3, value=2)
    value = pd_event(
        "v2_deal_change_stage.json", company, id="c-2", timestamp="2025-04-15T15:45:00.000Z"
    )
    value["data"].update(stage_id=1, value=Decimal("1999.99"))
    value["previous"] = {"value": 2}
    for body in (stage, value, create, stage):  # newest first, the creation last, a retry
        r = await client.post(
            url,
            content=json.dumps(body, default=str),
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
    survivor = f"pipedrive:{company}:1"
    # The two changes can be applied before the creation (sent third): wait for its name.
    final = await wait_for(client, survivor, stage="proposal", amount="1999.99", name="Title")
    versions = await history_of(client, survivor, versions=3)
    assert [v["stage"] for v in versions] == ["qualified", "qualified", "proposal"]

    gone = pd_event("v2_deal_merge_delete.json", company)
    merge_change = pd_event("v2_deal_merge_change.json", company)
    merged_away = f"pipedrive:{company}:{gone['meta']['entity_id']}"
    for body in (gone, merge_change):
        r = await client.post(
            url,
            content=json.dumps(body, default=str),
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
    deleted = await wait_for(client, merged_away, deleted=True)
    assert deleted["properties"]["merged_into"] == survivor
    assert final["owner_id"] == "rep-cy", "the creation's fields are kept under later changes"


async def test_salesforce_skips_our_own_writes(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    source = (await client.get(f"/v1/sources/sf-{org.lower()}")).json()
    body = {k: source[k] for k in ("id", "kind", "account_id", "mapping", "enabled")}
    await put_source(client, {**body, "own_client_ids": ["salesops-sync"]})
    create = fixture("salesforce/cdc_cometd_opportunity_create.json")  # client=salesops-sync
    r = await send_cdc(client, f"{stack_url}/v1/webhooks/salesforce/cdc", body["id"], create)
    assert r.status_code == 200
    assert r.json()["accepted"] == 0, "a change we wrote ourselves must not loop back"


async def engagement_source(
    client: httpx.AsyncClient, stack_url: str, crm_url: str
) -> tuple[str, HubSpot]:
    """A HubSpot source whose engagements are re-fetched from `crm_url`, and its sender."""
    portal = unique_account()
    await put_source(
        client,
        {
            "id": f"hs-eng-{portal}",
            "kind": "hubspot",
            "account_id": portal,
            "secrets": {"current": "hs-eng"},
            "api_base_url": crm_url,
            "api_token": "hs-token",
            "mapping": {"owners": {"75761595": "rep-ana", "75761596": "rep-bo"}},
        },
    )
    return portal, HubSpot(client, stack_url, portal, "hs-eng")


async def test_hubspot_engagement_is_linked_to_its_deal_and_rep(
    client: httpx.AsyncClient, stack_url: str, database_url: str
) -> None:
    crms = FakeCrms()
    crms.hubspot.engagements["calls/9001"] = hubspot_call("9001")
    async with serve_in_loop(create_app(crms)) as crm_url:
        portal, sender = await engagement_source(client, stack_url, crm_url)
        creation = {
            "eventId": 1,
            "subscriptionId": 2,
            "appId": 3,
            "attemptNumber": 0,
            "occurredAt": 1_780_307_400_000,
            "subscriptionType": "object.creation",
            "objectTypeId": "0-48",
            "objectId": 9001,
        }
        r = await sender.send([creation])
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
        assert len(r.json()["resync_jobs"]) == 1

        engine = create_async_engine(database_url)
        try:

            async def linked() -> Any:
                async with engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text(
                                "SELECT kind, deal_id, rep_id, occurred_at, properties "
                                "FROM forecast.activities WHERE activity_id = :id"
                            ),
                            {"id": f"hubspot:{portal}:9001"},
                        )
                    ).first()
                return row if row is not None and row.deal_id else None

            row = await eventually(linked, within=60)
        finally:
            await engine.dispose()
    assert row.kind == "call"
    assert row.deal_id == f"hubspot:{portal}:332507367156"
    assert row.rep_id == "rep-ana"
    assert row.occurred_at.isoformat() == "2026-06-01T09:30:00+00:00"
    assert row.properties == {"hs_call_title": "Discovery call"}


async def test_one_unreadable_hubspot_item_does_not_fail_the_batch(hubspot: HubSpot) -> None:
    good = prop(800, "dealname", "Good one", 1_782_200_000_000, 1)
    bad = {**prop(800, "amount", "5", 1_782_200_000_000, 2), "occurredAt": 1.5}
    r = await hubspot.send([good, bad])
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["unsupported"]) == (1, 1)
    await wait_for(hubspot.client, f"hubspot:{hubspot.portal}:800", name="Good one")
    dlq = (await hubspot.client.get("/v1/dlq", params={"source_id": f"hs-{hubspot.portal}"})).json()
    assert any("could not be read" in i["reason"] for i in dlq["items"])


# --- What real CRMs send besides the happy path ------------------------------------------


async def ignored_metric(client: httpx.AsyncClient, kind: str) -> float:
    text_ = (await client.get("/metrics")).text
    line = f'salesops_webhook_ignored_total{{kind="{kind}"}} '
    found = [float(row.split()[-1]) for row in text_.splitlines() if row.startswith(line)]
    return found[0] if found else 0.0


async def ignored_notes(database_url: str, source_id: str) -> list[str]:
    rows = await query(
        database_url,
        "SELECT ignored FROM pipeline.webhook_requests WHERE source_id = :s ORDER BY id",
        s=source_id,
    )
    return [note for row in rows for note in row.ignored or []]


async def dlq_items(client: httpx.AsyncClient, source_id: str) -> list[Any]:
    r = await client.get("/v1/dlq", params={"source_id": source_id})
    items: list[Any] = r.json()["items"]
    return items


async def test_hubspot_batch_mixing_an_unconfigured_portal_keeps_the_configured_one(
    hubspot: HubSpot, database_url: str
) -> None:
    source_id = f"hs-{hubspot.portal}"
    before = await ignored_metric(hubspot.client, "hubspot")
    t = 1_782_000_000_000
    items = [
        *hubspot.batch([prop(801, "dealname", "Mixed batch deal", t, 1)]),
        {**prop(802, "dealname", "Someone else's deal", t, 2), "portalId": 1},
    ]
    r = await hubspot.send([], raw=json.dumps(items).encode())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["accepted"], answer["ignored"], answer["parked"]) == (1, 1, 0)
    await wait_for(hubspot.client, f"hubspot:{hubspot.portal}:801", name="Mixed batch deal")
    assert any("portal 1" in note for note in await ignored_notes(database_url, source_id))
    assert not await dlq_items(hubspot.client, source_id), "nothing for an operator to do"
    assert await ignored_metric(hubspot.client, "hubspot") == before + 1


async def test_hubspot_batch_with_a_disabled_portal_keeps_its_items_for_a_replay(
    hubspot: HubSpot, database_url: str
) -> None:
    """A disabled source's portal answers as an unconfigured one does (the batch is
    acknowledged), but its items are archived under its own source, to be replayed once
    it is enabled again."""
    paused_portal = unique_account()
    paused: dict[str, Any] = {
        "id": f"hs-{paused_portal}",
        "kind": "hubspot",
        "account_id": paused_portal,
        "secrets": {"current": hubspot.secret},
        "enabled": False,
    }
    await put_source(hubspot.client, paused)
    t = 1_782_000_000_000
    items = [
        *hubspot.batch([prop(811, "dealname", "Enabled portal's deal", t, 1)]),
        {**prop(812, "dealname", "Paused portal's deal", t, 2), "portalId": int(paused_portal)},
    ]
    r = await hubspot.send([], raw=json.dumps(items).encode())
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["ignored"]) == (1, 1)
    assert any("is disabled" in n for n in await ignored_notes(database_url, paused["id"]))
    assert not any(
        paused_portal in n for n in await ignored_notes(database_url, f"hs-{hubspot.portal}")
    ), "not noted under another portal's source"

    await put_source(hubspot.client, {**paused, "enabled": True})
    r = await hubspot.client.post("/v1/webhook-requests/replay", json={"source_id": paused["id"]})
    assert r.status_code == 200, r.text
    await wait_for(hubspot.client, f"hubspot:{paused_portal}:812", name="Paused portal's deal")


async def test_hubspot_single_event_object_replayed_from_logs_is_accepted(hubspot: HubSpot) -> None:
    item = hubspot.batch([prop(803, "dealname", "Replayed from a log", 1_782_000_000_000, 1)])[0]
    r = await hubspot.send([], raw=json.dumps(item).encode())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    await wait_for(hubspot.client, f"hubspot:{hubspot.portal}:803", name="Replayed from a log")


async def test_pipedrive_custom_field_only_edit_is_ignored_not_dead_lettered(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str, database_url: str
) -> None:
    client, company = pipedrive
    edit = pd_event("v2_deal_change_stage.json", company, id=str(uuid.uuid4()))
    custom = {"dcf558aac1ae4e8c4f849ba5e668430d8df9be12": {"type": "varchar", "value": "new"}}
    edit["data"]["custom_fields"] = custom
    edit["previous"] = {"custom_fields": {"dcf558aac1ae4e8c4f849ba5e668430d8df9be12": None}}
    before = await ignored_metric(client, "pipedrive")
    r = await client.post(
        f"{stack_url}/v1/webhooks/pipedrive", json=edit, headers=basic("salesops", "pd-pass")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["ignored"], r.json()["parked"], r.json()["accepted"]) == (1, 0, 0)
    assert not await dlq_items(client, f"pd-{company}")
    notes = await ignored_notes(database_url, f"pd-{company}")
    assert any("no field we keep" in note for note in notes)
    assert await ignored_metric(client, "pipedrive") == before + 1


def pd_deal(company: str, deal: int, org: int, timestamp: str) -> dict[str, Any]:
    body = pd_event(
        "v2_deal_create_pipedream.json",
        company,
        id=str(uuid.uuid4()),
        entity_id=deal,
        timestamp=timestamp,
    )
    body["data"].update(id=deal, org_id=org)
    return body


async def test_pipedrive_organization_merge_moves_its_deals_to_the_survivor(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    auth_ = basic("salesops", "pd-pass")
    for deal_, org in ((91, 5), (92, 5), (93, 5)):
        r = await client.post(
            url, json=pd_deal(company, deal_, org, "2023-01-01T00:00:00Z"), headers=auth_
        )
        assert r.status_code == 200, r.text
    # Deal 93 was on org 5 once, and left it before the merge.
    moved = pd_event("v2_deal_change_stage.json", company, id=str(uuid.uuid4()), entity_id=93)
    moved["meta"]["timestamp"] = "2023-01-15T00:00:00Z"
    moved["data"].update(id=93, org_id=8)
    moved["previous"] = {"org_id": 5}
    assert (await client.post(url, json=moved, headers=auth_)).status_code == 200
    for deal_, org in ((91, 5), (92, 5), (93, 8)):
        await wait_for(
            client, f"pipedrive:{company}:{deal_}", account_id=f"pipedrive:{company}:{org}"
        )

    merge = pd_event("v2_deal_merge_delete.json", company, id=str(uuid.uuid4()))
    merge["meta"].update(entity="organization", entity_id=5, merged_to_id="2")
    merge["meta"]["timestamp"] = "2023-03-01T00:00:00Z"
    merge["previous"] = {"id": 5, "name": "Acme (duplicate)"}
    r = await client.post(url, json=merge, headers=auth_)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2, "one update per deal of the merged organisation"
    survivor = f"pipedrive:{company}:2"
    await wait_for(client, f"pipedrive:{company}:91", account_id=survivor)
    await wait_for(client, f"pipedrive:{company}:92", account_id=survivor)
    assert (await deal(client, f"pipedrive:{company}:93") or {})["account_id"] == (
        f"pipedrive:{company}:8"
    ), "a deal that left the organisation stays where it is"

    # A change from before the merge that still names the merged organisation arrives late:
    # it is older than the merge, so the deal stays with the survivor.
    late = pd_event("v2_deal_change_stage.json", company, id=str(uuid.uuid4()), entity_id=91)
    late["meta"]["timestamp"] = "2023-02-01T00:00:00Z"
    late["data"].update(id=91, org_id=5, title="Renamed before the merge")
    late["previous"] = {"title": "Title"}
    assert (await client.post(url, json=late, headers=auth_)).status_code == 200
    versions = await history_of(client, f"pipedrive:{company}:91", versions=3)
    assert [v["account_id"] for v in versions] == [
        f"pipedrive:{company}:5",
        f"pipedrive:{company}:5",
        survivor,
    ]
    assert versions[-1]["name"] == "Renamed before the merge", "the late change is folded in"


def pd_org_merge(company: str, merged: int, survivor: int, timestamp: str) -> dict[str, Any]:
    merge = pd_event("v2_deal_merge_delete.json", company, id=str(uuid.uuid4()))
    merge["meta"].update(entity="organization", entity_id=merged, merged_to_id=str(survivor))
    merge["meta"]["timestamp"] = timestamp
    merge["previous"] = {"id": merged, "name": "Acme (duplicate)"}
    return merge


async def test_a_merge_known_before_its_deals_arrive_puts_them_on_the_survivor(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    """The merge is remembered: a deal whose creation (dated before the merge) names the
    merged organisation after the merge arrived ends on the survivor; chains of merges are
    followed in whatever order they arrive; a merge closing a cycle is parked."""
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    auth_ = basic("salesops", "pd-pass")
    for merged, survivor, when in ((55, 22, "2023-03-01"), (22, 11, "2023-02-01")):
        r = await client.post(
            url, json=pd_org_merge(company, merged, survivor, f"{when}T00:00:00Z"), headers=auth_
        )
        assert r.status_code == 200, r.text
    r = await client.post(url, json=pd_deal(company, 95, 55, "2023-01-01T00:00:00Z"), headers=auth_)
    assert r.status_code == 200, r.text
    await wait_for(client, f"pipedrive:{company}:95", account_id=f"pipedrive:{company}:11")

    # Out of order: 33 into 55 arrives after 55 into 22 and 22 into 11; deal 96 on 33.
    r = await client.post(url, json=pd_deal(company, 96, 33, "2023-01-01T00:00:00Z"), headers=auth_)
    await wait_for(client, f"pipedrive:{company}:96", account_id=f"pipedrive:{company}:33")
    r = await client.post(
        url, json=pd_org_merge(company, 33, 55, "2023-01-15T00:00:00Z"), headers=auth_
    )
    assert r.json()["accepted"] == 1, r.text
    await wait_for(client, f"pipedrive:{company}:96", account_id=f"pipedrive:{company}:11")

    r = await client.post(
        url, json=pd_org_merge(company, 11, 33, "2023-04-01T00:00:00Z"), headers=auth_
    )
    assert r.status_code == 200, r.text
    assert r.json()["unsupported"] == 1, "11 into 33 would close a cycle: 33 ends on 11"
    dlq = (await client.get("/v1/dlq", params={"source_id": f"pd-{company}"})).json()
    assert any("close a cycle" in i["reason"] for i in dlq["items"])


async def add_alias(
    sessions: async_sessionmaker[AsyncSession],
    source_id: str,
    merged: str,
    survivor: str,
    event_key: str | None = None,
) -> None:
    """Record a merge (dated 2023-02-01) as another replica would, behind our back."""
    async with sessions() as session, session.begin():
        await repository.add_account_alias(
            session,
            alias=AccountAlias(
                source_id=source_id,
                merged_id=merged,
                survivor_id=survivor,
                merged_at=datetime(2023, 2, 1, tzinfo=UTC),
                event_key=event_key or f"m-{source_id}-{merged}",
            ),
        )


async def test_a_deal_stored_while_its_account_is_merged_is_moved_by_the_sweep(
    database_url: str,
) -> None:
    """The race the merge's look-up of the log cannot see: a deal change mapped before the
    merge's alias was visible, stored after the merge looked for the account's deals. The
    sweep finds the alias recorded within its window and moves the deal, at the time of
    the merge; sweeping again stores nothing. An alias recorded before the window is left
    alone, except by the sweep at start-up, which looks at every merge. (The aliases are
    dated back past the running stack's own 10-minute window: only these calls sweep.)"""
    company = unique_account()
    source = SourceIn.model_validate(
        {"id": f"pd-{company}", "kind": "pipedrive", "account_id": company}
    )
    engine = create_async_engine(database_url)
    sessions = create_sessionmaker(engine)
    writer = EventLogWriter(
        driver_dsn(database_url), on_commit=lambda: None, max_event_bytes=1 << 20
    )
    writer.start()
    window = timedelta(hours=1)

    async def sweep(within: timedelta | None) -> int:
        return await merge_sweep.sweep(
            sessions=sessions, writer=writer, max_future=MAX_FUTURE, within=within
        )

    async def merged(account: str, survivor: str, key: str, ago: timedelta) -> None:
        await add_alias(sessions, source.id, account, survivor, event_key=key)
        async with sessions() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE pipeline.account_aliases"
                    " SET recorded_at = now() - CAST(:ago AS interval)"
                    " WHERE source_id = :s AND merged_id = :m"
                ),
                {"s": source.id, "m": account, "ago": ago},
            )

    def row_of(deal: str, account: str) -> LogRow:
        change = DealChange(
            crm_id=deal,
            event_key=f"k-{company}-{deal}",
            occurred_at=datetime(2023, 1, 1, tzinfo=UTC),
            op="updated",
            fields={"account_id": account, "name": "Mapped before the merge"},
        )
        row = to_row(source, change, max_bytes=1 << 20, max_future=MAX_FUTURE)
        assert isinstance(row, LogRow)
        return row

    try:
        async with sessions() as session, session.begin():
            await upsert_source(session, source=source)
        await merged("55", "22", f"m-{company}", timedelta(minutes=20))
        assert await writer.append([row_of("7", "55")]) == [True]
        assert await sweep(window) == 1
        assert await sweep(window) == 0, "the same merge moves the same deal once"

        await merged("66", "44", f"old-{company}", timedelta(hours=2))
        assert await writer.append([row_of("8", "66")]) == [True]
        assert await sweep(window) == 0, "a merge recorded before the window is not looked at"
        assert await sweep(None) >= 1
    finally:
        await writer.stop()
        await engine.dispose()
    moved = await query(
        database_url,
        "SELECT event_id, event_time, envelope->'data'->>'account_id' AS account"
        " FROM pipeline.events WHERE source = :s AND event_id NOT LIKE 'k-%' ORDER BY event_id",
        s=f"crm://pipedrive/{company}",
    )
    assert [(m.event_id, m.event_time, m.account) for m in moved] == [
        (f"m-{company}:account:7", datetime(2023, 2, 1, tzinfo=UTC), f"pipedrive:{company}:22"),
        (f"old-{company}:account:8", datetime(2023, 2, 1, tzinfo=UTC), f"pipedrive:{company}:44"),
    ]


async def test_the_pipeline_api_sweeps_merges_recorded_behind_its_back(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str, database_url: str
) -> None:
    """A merge recorded by another replica after this one stored a deal on the merged
    account: the running service's own sweep moves the deal, nobody asking. A merge
    recorded through this process is seen by its next delivery, however fresh its cache."""
    client, company = pipedrive
    url = f"{stack_url}/v1/webhooks/pipedrive"
    auth_ = basic("salesops", "pd-pass")
    r = await client.post(url, json=pd_deal(company, 97, 66, "2023-01-01T00:00:00Z"), headers=auth_)
    assert r.status_code == 200, r.text
    await wait_for(client, f"pipedrive:{company}:97", account_id=f"pipedrive:{company}:66")
    engine = create_async_engine(database_url)
    try:
        await add_alias(create_sessionmaker(engine), f"pd-{company}", "66", "44")
    finally:
        await engine.dispose()
    await wait_for(client, f"pipedrive:{company}:97", account_id=f"pipedrive:{company}:44")

    # A merge through this process is seen by its next delivery, the cache just read.
    for body in (
        pd_deal(company, 98, 99, "2023-01-01T00:00:00Z"),
        pd_org_merge(company, 44, 33, "2023-03-01T00:00:00Z"),
        pd_deal(company, 99, 44, "2023-01-01T00:00:00Z"),
    ):
        r = await client.post(url, json=body, headers=auth_)
        assert r.status_code == 200, r.text
    stored = await query(
        database_url,
        "SELECT envelope->'data'->>'account_id' AS account FROM pipeline.events"
        " WHERE source = :s AND subject = :d",
        s=f"crm://pipedrive/{company}",
        d=f"pipedrive:{company}:99",
    )
    assert [row.account for row in stored] == [f"pipedrive:{company}:33"]


async def test_the_alias_cache_keeps_a_source_s_merges_until_this_process_records_one(
    database_url: str,
) -> None:
    """Deliveries read the merges from memory: one recorded elsewhere is seen once the TTL
    ends, one recorded here at once (`invalidate`); a delivery naming no account reads
    nothing."""
    source = SourceIn.model_validate(
        {"id": f"pd-{unique_account()}", "kind": "pipedrive", "account_id": "1"}
    )
    named = [
        DealChange(
            crm_id="7",
            event_key="k",
            occurred_at=datetime(2023, 1, 1, tzinfo=UTC),
            op="updated",
            fields={"account_id": "55"},
        )
    ]
    engine = create_async_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        cache = account_merges.AliasCache(sessions, ttl=3600)
        assert await cache.survivors_for(source=source, changes=named) == {}
        await add_alias(sessions, source.id, "55", "22")
        assert await cache.survivors_for(source=source, changes=named) == {}, "kept for the TTL"
        nowhere = create_sessionmaker(
            create_async_engine(f"postgresql+asyncpg://x@127.0.0.1:{free_port()}/x")
        )
        unnamed = [
            DealChange(
                crm_id="7",
                event_key="k2",
                occurred_at=named[0].occurred_at,
                op="updated",
                fields={"name": "n"},
            )
        ]
        assert (
            await account_merges.AliasCache(nowhere).survivors_for(source=source, changes=unnamed)
            == {}
        )
        cache.invalidate(source.id)
        assert await cache.survivors_for(source=source, changes=named) == {"55": "22"}
        await add_alias(sessions, source.id, "22", "11")
        assert await account_merges.AliasCache(sessions, ttl=0).survivors_for(
            source=source, changes=named
        ) == {
            "55": "11",
            "22": "11",
        }
    finally:
        await engine.dispose()


def outbound_with_untimed_opportunities(org: str, untimed: int = 1) -> bytes:
    """The published two-notification message plus `untimed` Opportunity notifications
    whose admin-picked fields include none of LastModifiedDate, SystemModstamp or
    CreatedDate (records 0065w000023STB0AAO, …B1…, one a notification)."""
    xml = (FIXTURES / "salesforce/outbound_two_notifications.xml").read_text()
    xml = xml.replace("00D5w000004qGTOEA2", org)
    start = xml.index("<Notification>")
    block = xml[start : xml.index("</Notification>") + len("</Notification>")]
    for name in ("LastModifiedDate", "SystemModstamp", "CreatedDate"):
        cut = block.index(f"<sf:{name}>")
        block = block[:cut] + block[block.index(f"</sf:{name}>") + len(f"</sf:{name}>") :]
    added = "".join(
        block.replace("04l5w00005286hAAAQ", f"04l5w00005286h{n}AAQ").replace(
            "0065w000023STAmAAO", f"0065w000023STB{n}AAO"
        )
        for n in range(untimed)
    )
    return (xml[:start] + added + xml[start:]).encode()


async def untimed_parked(client: httpx.AsyncClient, org: str) -> list[dict[str, Any]]:
    dlq = (await client.get("/v1/dlq", params={"source_id": f"sf-{org.lower()}"})).json()
    return [i for i in dlq["items"] if "re-read the Opportunity" in i["reason"]]


async def test_salesforce_outbound_without_a_time_is_parked_with_its_values_if_no_resync(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str, database_url: str
) -> None:
    """An Outbound-only source cannot re-sync: the notification without a time is parked
    with its fields and the reason (not queued as a job bound to fail); configuring
    re-sync replays it into a job. Many such notifications make one job."""
    client, org = salesforce
    source_id = f"sf-{org.lower()}"
    url = f"{stack_url}/v1/webhooks/salesforce/outbound?token=sf-relay-secret"
    r = await client.post(
        url, content=outbound_with_untimed_opportunities(org), headers={"Content-Type": "text/xml"}
    )
    assert r.status_code == 200, r.text
    assert "<Ack>true</Ack>" in r.text
    await wait_for(client, f"salesforce:{org}:0065w000023STAmAAO", stage="negotiation")
    jobs_sql = "SELECT crm_ids, reason FROM pipeline.resync_jobs WHERE source_id = :s ORDER BY id"
    assert await query(database_url, jobs_sql, s=source_id) == []
    (item,) = await untimed_parked(client, org)
    assert "cannot re-sync (api_base_url and api_token or oauth not set)" in item["reason"]
    assert item["replayable"] is True
    assert item["change"]["values"]["sobject"]["Id"] == "0065w000023STB0AAO"
    assert item["change"]["values"]["sobject"]["StageName"] == "Negotiation/Review"
    assert await deal(client, f"salesforce:{org}:0065w000023STB0AAO") is None

    source = (await client.get(f"/v1/sources/{source_id}")).json()
    await put_source(
        client,
        {
            "id": source_id,
            "kind": "salesforce",
            "account_id": org,
            "mapping": source["mapping"],
            "api_base_url": "http://127.0.0.1:9",
            "api_token": "sf-token",
        },
    )
    assert await untimed_parked(client, org) == [], "replayed into a re-sync job"
    jobs = await query(database_url, jobs_sql, s=source_id)
    assert [list(j.crm_ids) for j in jobs] == [["0065w000023STB0AAO"]]

    r = await client.post(
        url,
        content=outbound_with_untimed_opportunities(org, untimed=3),
        headers={"Content-Type": "text/xml"},
    )
    assert r.status_code == 200, r.text
    jobs = await query(database_url, jobs_sql, s=source_id)
    assert [list(j.crm_ids) for j in jobs][1:] == [
        ["0065w000023STB0AAO", "0065w000023STB1AAO", "0065w000023STB2AAO"]
    ], "one job for the message's three notifications"


async def test_changes_parked_for_carrying_no_kept_field_leave_the_dlq_on_replay(
    pipedrive: tuple[httpx.AsyncClient, str], database_url: str
) -> None:
    # What earlier versions parked for a custom-field-only edit: nothing for an operator to
    # do, so a replay settles it instead of leaving it in the DLQ for ever.
    client, company = pipedrive
    source_id = f"pd-{company}"
    change = {
        "type": "deal",
        "crm_id": "1",
        "event_key": f"pd:{uuid.uuid4()}",
        "occurred_at": "2023-01-01T00:00:00+00:00",
        "op": "updated",
        "sequence": None,
        "fields": {},
        "properties": {"dcf558aac1ae4e8c4f849ba5e668430d8df9be12": "new"},
        "merged_into": None,
    }
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO pipeline.parked_events (source_id, reason, replayable, change) "
                    "VALUES (:s, 'change carries no field we keep', true, CAST(:c AS jsonb))"
                ),
                {"s": source_id, "c": json.dumps(change)},
            )
    finally:
        await engine.dispose()
    assert len(await dlq_items(client, source_id)) == 1
    r = await client.post("/v1/dlq/replay", json={"source_id": source_id})
    assert r.status_code == 200, r.text
    assert (r.json()["still_parked"], r.json()["settled"], r.json()["replayed"]) == (0, 1, 0)
    assert not await dlq_items(client, source_id)
