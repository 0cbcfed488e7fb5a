"""The archive of webhook requests through the running service: what arrived can be read
back byte for byte, and read again with today's settings (replay) without double counting."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from shared.tables import encode_cursor
from tests.integration.test_webhooks import (
    basic,
    fixture,
    pd_event,
    pipedrive,
    put_source,
    salesforce,
    send_cdc,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["pipedrive", "salesforce"]  # fixtures, used by name below

ARCHIVE = "/v1/webhook-requests"


async def test_requests_are_listed_and_read_back_as_they_arrived(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, company = pipedrive
    create = pd_event("v2_deal_create_pipedream.json", company, id=str(uuid.uuid4()))
    raw = json.dumps(create, default=str, indent=2).encode()
    r = await client.post(
        f"{stack_url}/v1/webhooks/pipedrive",
        content=raw,
        headers={**basic("salesops", "pd-pass"), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text

    page = (await client.get(ARCHIVE, params={"source_id": f"pd-{company}"})).json()
    (listed,) = page["items"]
    assert listed["kind"] == "pipedrive"
    assert listed["size"] == len(raw)
    assert "body" not in listed
    assert "authorization" not in listed["headers"], "credentials are never archived"
    one = (await client.get(f"{ARCHIVE}/{listed['id']}")).json()
    assert one["body_encoding"] == "utf-8"
    assert one["body"].encode() == raw

    kinds = (await client.get(ARCHIVE, params={"kind": "hubspot", "limit": 1000})).json()
    assert listed["id"] not in [i["id"] for i in kinds["items"]]
    assert (await client.get(f"{ARCHIVE}/999999999")).status_code == 404
    unauthenticated = await httpx.AsyncClient(base_url=stack_url).get(ARCHIVE)
    assert unauthenticated.status_code == 401


async def test_replay_reads_a_delivery_again_with_todays_settings(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    """A relay's own client id listed in own_client_ids by mistake made us skip a real
    change; once the setting is fixed, replaying the archived delivery stores it, and a
    second replay only finds duplicates."""
    client, org = salesforce
    source_id = f"sf-{org.lower()}"
    source = (await client.get(f"/v1/sources/{source_id}")).json()
    body = {k: source[k] for k in ("id", "kind", "account_id", "mapping", "enabled")}
    await put_source(client, {**body, "own_client_ids": ["salesops-sync"]})
    create = fixture("salesforce/cdc_cometd_opportunity_create.json")  # client=salesops-sync
    r = await send_cdc(client, f"{stack_url}/v1/webhooks/salesforce/cdc", source_id, create)
    assert r.json()["accepted"] == 0

    await put_source(client, {**body, "own_client_ids": []})
    replayed = await client.post(f"{ARCHIVE}/replay", json={"source_id": source_id})
    assert replayed.status_code == 200, replayed.text
    first = replayed.json()
    assert (first["requests"], first["accepted"], first["duplicates"]) == (1, 1, 0)
    assert first["failed"] == []
    assert first["next_after_id"] is None
    deal = await wait_for(client, f"salesforce:{org}:0065w000023STAmAAO", stage="prospecting")
    assert deal["name"] == "Backpackers, Inc. renewal"

    again = (await client.post(f"{ARCHIVE}/replay", json={"source_id": source_id})).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    archived = (await client.get(ARCHIVE, params={"source_id": source_id})).json()["items"]
    assert len(archived) == 1, "a replay is not archived again"


async def test_replay_does_not_park_the_same_change_twice(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, company = pipedrive
    lead = pd_event("v2_lead_change_pipedream.json", company, id=str(uuid.uuid4()))
    r = await client.post(
        f"{stack_url}/v1/webhooks/pipedrive", json=lead, headers=basic("salesops", "pd-pass")
    )
    assert r.json()["unsupported"] == 1
    source_id = f"pd-{company}"

    async def parked() -> list[Any]:
        page = await client.get("/v1/dlq", params={"source_id": source_id, "limit": 1000})
        items: list[Any] = page.json()["items"]
        return items

    before = await parked()
    (request_id,) = [
        i["id"]
        for i in (await client.get(ARCHIVE, params={"source_id": source_id})).json()["items"]
    ]
    out = (await client.post(f"{ARCHIVE}/replay", json={"ids": [request_id]})).json()
    assert (out["requests"], out["unsupported"]) == (1, 1)
    assert len(await parked()) == len(before) == 1


async def test_replay_says_what_it_could_not_do(client: httpx.AsyncClient) -> None:
    neither = await client.post(f"{ARCHIVE}/replay", json={})
    assert neither.status_code == 422
    assert neither.headers["content-type"].startswith("application/problem+json")
    unknown = await client.post(f"{ARCHIVE}/replay", json={"ids": [999999999]})
    assert unknown.status_code == 404
    assert "999999999" in unknown.json()["detail"]
    cursor = base64.urlsafe_b64encode(b"not json").decode()
    assert (await client.get(ARCHIVE, params={"cursor": cursor})).status_code == 400
    for forged in (["x"], [2**64 - 1], [True], [-1]):
        r = await client.get(ARCHIVE, params={"cursor": encode_cursor(forged)})
        assert r.status_code == 400, (forged, r.text)
    assert (await client.get(f"{ARCHIVE}/{2**63}")).status_code == 422
    too_big = await client.post(f"{ARCHIVE}/replay", json={"ids": [2**63]})
    assert too_big.status_code == 422
    deals = await client.get("/v1/deals", params={"cursor": encode_cursor([7])})
    assert deals.status_code == 400
