"""Hostile and careless input on every webhook route, through the real stack: nothing is
expensive before authentication, unknown accounts answer like bad credentials, and no
input gets a 500: a body the parser cannot take is a 400 problem, and a change that
cannot be stored (a bad amount, a NUL character) is parked with its reason while the
rest of the delivery is stored."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from services.pipeline_api.crm.hubspot.signatures import hubspot_v3
from services.pipeline_api.crm.salesforce.signatures import relay_signature
from tests.integration.test_webhooks import (
    FIXTURES,
    HubSpot,
    basic,
    fixture,
    hubspot,
    pd_event,
    pipedrive,
    prop,
    salesforce,
    send_cdc,
)

pytestmark = pytest.mark.integration
__all__ = ["hubspot", "pipedrive", "salesforce"]  # fixtures used by name below

DEEP_JSON = b"[" * 5000 + b"]" * 5000
HUGE = "1e999999999"
NO_DETAIL = "The request could not be authenticated."


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def _outbound(org: str) -> bytes:
    xml = (FIXTURES / "salesforce/outbound_two_notifications.xml").read_text()
    found = re.search(r"<OrganizationId>([^<]+)</OrganizationId>", xml)
    assert found is not None
    return xml.replace(found.group(1), org).encode()


async def _post_cdc(client: httpx.AsyncClient, base: str, org: str, body: bytes) -> httpx.Response:
    """A raw body to the CDC route, signed as the source's relay would sign it."""
    ts = str(int(time.time()))
    return await client.post(
        f"{base}/v1/webhooks/salesforce/cdc",
        content=body,
        headers={
            "X-Salesops-Source": f"sf-{org.lower()}",
            "X-Salesops-Timestamp": ts,
            "X-Salesops-Signature": "sha256=" + relay_signature("sf-relay-secret", ts, body),
        },
    )


async def _dlq_reasons(client: httpx.AsyncClient, source_id: str) -> list[str]:
    items = (await client.get("/v1/dlq", params={"source_id": source_id})).json()["items"]
    return [i["reason"] for i in items]


# --- Nesting deeper than the parser allows: 400 after authentication, 401 before ------


async def test_deep_json_is_a_400_on_every_json_route(
    hubspot: HubSpot,
    pipedrive: tuple[httpx.AsyncClient, str],
    salesforce: tuple[httpx.AsyncClient, str],
    stack_url: str,
) -> None:
    client, _company = pipedrive
    _, org = salesforce
    nested_100 = b'{"meta": {}, "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    for body in (DEEP_JSON, nested_100):
        _problem(await hubspot.send([], raw=body), 400)
        pd = await client.post(
            f"{stack_url}/v1/webhooks/pipedrive",
            content=body,
            headers={**basic("salesops", "pd-pass"), "Content-Type": "application/json"},
        )
        _problem(pd, 400)
        cdc = await _post_cdc(client, stack_url, org, body)
        assert "nested deeper" in _problem(cdc, 400)["detail"]


async def test_deep_soap_is_a_400_with_the_token_and_a_401_without(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    deep = "<sf:x>" * 5000 + "1" + "</sf:x>" * 5000
    body = _outbound(org).replace(
        b"<sf:Amount>45000.0</sf:Amount>", f"<sf:Amount>{deep}</sf:Amount>".encode()
    )
    url = f"{stack_url}/v1/webhooks/salesforce/outbound"
    assert _problem(await client.post(url, content=body), 401)["detail"] == NO_DETAIL
    with_token = await client.post(url, params={"token": "sf-relay-secret"}, content=body)
    if with_token.status_code == 200:  # each notification stands alone: that one is parked
        assert "<Ack>true</Ack>" in with_token.text
        reasons = await _dlq_reasons(client, f"sf-{org.lower()}")
        assert any("nested deeper" in reason for reason in reasons)
    else:
        assert "nested deeper" in _problem(with_token, 400)["detail"]


async def test_outbound_token_is_checked_before_the_body_is_parsed(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, _org = salesforce
    url = f"{stack_url}/v1/webhooks/salesforce/outbound"
    for body in (b"<not xml", (FIXTURES / "salesforce/outbound_entity_bomb.xml").read_bytes()):
        for params in ({}, {"token": "wrong"}):
            assert (
                _problem(await client.post(url, params=params, content=body), 401)["detail"]
                == NO_DETAIL
            )


# --- Unknown accounts answer exactly like bad credentials ------------------------------


async def test_unknown_sources_organisations_and_portals_answer_like_bad_credentials(
    hubspot: HubSpot,
    pipedrive: tuple[httpx.AsyncClient, str],
    salesforce: tuple[httpx.AsyncClient, str],
    stack_url: str,
) -> None:
    client, org = salesforce
    bad_signature = await send_cdc(
        client, f"{stack_url}/v1/webhooks/salesforce/cdc", f"sf-{org.lower()}", {}, secret="x"
    )
    expected = _problem(bad_signature, 401)
    assert expected["detail"] == NO_DETAIL
    del expected["instance"]  # the path, which differs by route
    answers = [
        await send_cdc(client, f"{stack_url}/v1/webhooks/salesforce/cdc", "sf-nobody", {}),
        await client.post(
            f"{stack_url}/v1/webhooks/salesforce/cdc",
            params={"source": "sf-\u0000"},
            content=b"{}",
            headers={
                "X-Salesops-Timestamp": str(int(time.time())),
                "X-Salesops-Signature": "sha256=00",
            },
        ),
        await client.post(
            f"{stack_url}/v1/webhooks/salesforce/outbound",
            params={"token": "sf-relay-secret\u0000"},
            content=_outbound(org),
        ),
        await client.post(
            f"{stack_url}/v1/webhooks/salesforce/outbound",
            params={"token": "sf-relay-secret"},
            content=_outbound("00D" + uuid.uuid4().hex[:12].upper()),
        ),
        await hubspot.send(
            [], raw=json.dumps([{**prop(1, "dealname", "x", 1, 1), "portalId": 1}]).encode()
        ),
        await pipedrive[0].post(
            f"{stack_url}/v1/webhooks/pipedrive",
            json=pd_event("v2_deal_create_pipedream.json", "1"),
            headers=basic("salesops", "pd-pass"),
        ),
    ]
    for answer in answers:
        problem = _problem(answer, 401)
        del problem["instance"]
        assert problem == expected


# --- Headers are checked first: long or odd timestamps are a 401 ----------------------


@pytest.mark.parametrize("timestamp", ["9" * 5000, "1" * 17, "²³", "-5", ""])
async def test_timestamp_headers_that_are_not_short_ascii_digits_are_a_401(
    hubspot: HubSpot, salesforce: tuple[httpx.AsyncClient, str], stack_url: str, timestamp: str
) -> None:
    client, org = salesforce
    body = json.dumps(hubspot.batch([prop(1, "dealname", "x", 1, 1)])).encode()
    hs = await hubspot.client.post(
        hubspot.url,
        content=body,
        headers={
            b"X-HubSpot-Signature-v3": hubspot_v3(
                hubspot.secret, "POST", hubspot.url, body.decode(), timestamp
            ).encode(),
            b"X-HubSpot-Request-Timestamp": timestamp.encode("latin-1"),
            b"Authorization": b"",
        },
    )
    assert _problem(hs, 401)["detail"] == NO_DETAIL
    cdc = await client.post(
        f"{stack_url}/v1/webhooks/salesforce/cdc",
        content=b"{}",
        headers={
            b"X-Salesops-Source": f"sf-{org.lower()}".encode(),
            b"X-Salesops-Timestamp": timestamp.encode("latin-1"),
            b"X-Salesops-Signature": b"sha256="
            + relay_signature("sf-relay-secret", timestamp, b"{}").encode(),
        },
    )
    assert _problem(cdc, 401)["detail"] == NO_DETAIL


# --- Numbers: never expanded, bad ones parked per change -------------------------------


@pytest.mark.parametrize("amount", [HUGE, "-1E+999999999", "9" * 5000, "NaN", "Infinity"])
async def test_a_bad_hubspot_amount_is_parked_and_the_rest_stored(
    hubspot: HubSpot, amount: str
) -> None:
    t = int(time.time() * 1000)
    r = await hubspot.send([prop(901, "amount", amount, t, 1), prop(901, "dealname", "ok", t, 2)])
    assert r.status_code == 200, r.text[:300]
    assert (r.json()["accepted"], r.json()["parked"]) == (1, 1)
    reasons = await _dlq_reasons(hubspot.client, f"hs-{hubspot.portal}")
    assert any("amount" in reason for reason in reasons)


@pytest.mark.parametrize("amount", [HUGE, "-1E+999999999", f'"{HUGE}"', "NaN", "9" * 4000])
async def test_a_bad_salesforce_cdc_amount_is_parked_not_expanded(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str, amount: str
) -> None:
    client, org = salesforce
    raw = json.dumps(fixture("salesforce/cdc_cometd_opportunity_create.json"))
    body = raw.replace('"Amount": 45000.5', f'"Amount": {amount}').encode()
    assert body != raw.encode()
    r = await _post_cdc(client, stack_url, org, body)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["parked"] == 1


async def test_a_bad_outbound_amount_is_parked_and_acked(
    salesforce: tuple[httpx.AsyncClient, str], stack_url: str
) -> None:
    client, org = salesforce
    body = _outbound(org).replace(b"45000.0", b"-1E+999999999")
    r = await client.post(
        f"{stack_url}/v1/webhooks/salesforce/outbound",
        params={"token": "sf-relay-secret"},
        content=body,
    )
    assert r.status_code == 200, r.text[:300]
    assert "<Ack>true</Ack>" in r.text
    reasons = await _dlq_reasons(client, f"sf-{org.lower()}")
    assert any("amount" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"value": 2,', f'"value": {2**70},'),
        ('"value": 2,', f'"value": {HUGE},'),
        ('"value": 2,', '"value": NaN,'),
        ('"id": 1,', f'"id": {2**64 + 1},'),
        ('"id": 1,', f'"id": {"9" * 5000},'),
        ('"user_id": 123123,', f'"user_id": {-(2**80)},'),
    ],
)
async def test_pipedrive_numbers_beyond_64_bits_are_handled(
    pipedrive: tuple[httpx.AsyncClient, str], stack_url: str, old: str, new: str
) -> None:
    client, company = pipedrive
    raw = json.dumps(pd_event("v2_deal_create_pipedream.json", company), indent=2)
    assert old.rstrip(",") in raw
    body = raw.replace(old.rstrip(","), new.rstrip(","), 1).encode()
    r = await client.post(
        f"{stack_url}/v1/webhooks/pipedrive",
        content=body,
        headers={**basic("salesops", "pd-pass"), "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text[:300]
    result = r.json()
    assert result["accepted"] + result["parked"] + result["unsupported"] == 1


# --- NUL characters --------------------------------------------------------------------


async def test_a_change_with_a_nul_is_parked_with_the_reason_and_the_rest_stored(
    hubspot: HubSpot,
) -> None:
    t = int(time.time() * 1000)
    r = await hubspot.send(
        [prop(950, "dealname", "bad\u0000name", t, 1), prop(951, "dealname", "good", t, 2)]
    )
    assert r.status_code == 200, r.text[:300]
    assert (r.json()["accepted"], r.json()["unsupported"]) == (1, 1)
    reasons = await _dlq_reasons(hubspot.client, f"hs-{hubspot.portal}")
    assert any("NUL" in reason for reason in reasons)


async def test_a_hubspot_item_the_parser_cannot_read_is_parked_and_the_rest_stored(
    hubspot: HubSpot,
) -> None:
    t = int(time.time() * 1000)
    merge = {**prop(903, "dealname", "x", t, 1), "subscriptionType": "deal.merge"}
    r = await hubspot.send([{**merge, "mergedObjectIds": 5}, prop(903, "dealname", "ok", t, 2)])
    assert r.status_code == 200, r.text[:300]
    assert (r.json()["accepted"], r.json()["unsupported"]) == (1, 1)
    reasons = await _dlq_reasons(hubspot.client, f"hs-{hubspot.portal}")
    assert any("could not be read" in reason for reason in reasons)
