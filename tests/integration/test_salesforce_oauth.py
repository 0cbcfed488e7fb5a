"""Salesforce re-syncs that outlive a session: the OAuth 2.0 refresh token flow.

Against the local Salesforce-shaped server (tests/support/fake_crm.py), over real HTTP: the
first request gets an access token, an expired session (401 INVALID_SESSION_ID) gets a new
one once, a rotated refresh token is handed over to be stored, and through the running
service a rotated token ends up in the source's stored configuration.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.pipeline_api.crm.credentials import CredentialsError
from services.pipeline_api.crm.registry import client_for
from services.pipeline_api.crm.salesforce.rest import SalesforceClient
from services.pipeline_api.sources.schemas import SalesforceOAuth, SourceIn
from tests.support.fake_crm import FakeCrms, create_app, salesforce_opportunity
from tests.support.infra import query, serve_in_loop
from tests.support.waiting import eventually

OPPORTUNITY = "006000000000001AAA"
CLIENT_ID = "3MVG9consumer-key"
CLIENT_SECRET = "consumer-secret"
REFRESH = "5Aep861refresh"


@pytest.fixture
async def salesforce() -> AsyncIterator[tuple[FakeCrms, str]]:
    crms = FakeCrms()
    crms.salesforce.add(salesforce_opportunity(OPPORTUNITY, Name="Renewal", Amount=100))
    crms.salesforce.oauth_clients[CLIENT_ID] = CLIENT_SECRET
    crms.salesforce.refresh_tokens.add(REFRESH)
    crms.salesforce.expire_session()  # no access token is valid until one is issued
    async with serve_in_loop(create_app(crms)) as url:
        yield crms, url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def oauth_source(url: str, *, secret: str = CLIENT_SECRET, refresh: str = REFRESH) -> SourceIn:
    return SourceIn(
        id="sf-oauth",
        kind="salesforce",
        account_id="00D000000000001",
        api_base_url=url,
        oauth=SalesforceOAuth(
            token_url=f"{url}/services/oauth2/token",
            client_id=CLIENT_ID,
            client_secret=SecretStr(secret),
            refresh_token=SecretStr(refresh),
        ),
    )


async def no_sleep(_: float) -> None:
    return None


async def test_access_token_is_fetched_then_renewed_once_after_the_session_expires(
    salesforce: tuple[FakeCrms, str], http: httpx.AsyncClient
) -> None:
    crms, url = salesforce
    client = client_for(oauth_source(url), http, sleep=no_sleep)
    assert isinstance(client, SalesforceClient)

    first = await client.fetch_deal(OPPORTUNITY)
    assert first is not None
    assert first.fields["name"] == "Renewal"
    assert crms.salesforce.token_requests == 1
    issued = crms.salesforce.token

    crms.salesforce.expire_session()
    again = await client.fetch_deal(OPPORTUNITY)
    assert again is not None
    assert crms.salesforce.token_requests == 2, "one renewal for one expired session"
    assert crms.salesforce.token != issued
    sent = [entry.headers.get("authorization") for entry in crms.salesforce.log]
    assert sent == [f"Bearer {issued}", f"Bearer {issued}", f"Bearer {crms.salesforce.token}"]


async def test_a_rotated_refresh_token_is_handed_over_and_the_old_one_retired(
    salesforce: tuple[FakeCrms, str], http: httpx.AsyncClient
) -> None:
    crms, url = salesforce
    crms.salesforce.rotate_refresh_tokens = True
    rotated: list[str] = []

    async def keep(token: str) -> None:
        rotated.append(token)

    client = client_for(oauth_source(url), http, sleep=no_sleep, on_rotated=keep)
    assert await client.fetch_deal(OPPORTUNITY) is not None
    assert len(rotated) == 1
    assert rotated[0] in crms.salesforce.refresh_tokens
    assert REFRESH not in crms.salesforce.refresh_tokens

    stale = client_for(oauth_source(url), http, sleep=no_sleep)
    with pytest.raises(CredentialsError, match="invalid_grant"):
        await stale.fetch_deal(OPPORTUNITY)
    renewed = client_for(oauth_source(url, refresh=rotated[0]), http, sleep=no_sleep)
    assert await renewed.fetch_deal(OPPORTUNITY) is not None


async def test_a_refused_client_secret_says_so_without_the_secret(
    salesforce: tuple[FakeCrms, str], http: httpx.AsyncClient
) -> None:
    _, url = salesforce
    client = client_for(oauth_source(url, secret="wrong-secret-value"), http, sleep=no_sleep)
    with pytest.raises(CredentialsError) as refused:
        await client.fetch_deal(OPPORTUNITY)
    message = str(refused.value)
    assert "invalid_client" in message
    assert "wrong-secret-value" not in message
    assert REFRESH not in message


async def test_the_service_stores_a_rotated_refresh_token_and_never_shows_it(
    salesforce: tuple[FakeCrms, str], client: httpx.AsyncClient, database_url: str
) -> None:
    crms, url = salesforce
    crms.salesforce.rotate_refresh_tokens = True
    source_id = f"sf-oauth-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "id": source_id,
        "kind": "salesforce",
        "account_id": f"00D{int(time.time() * 1000) % 10**12:012d}",
        "api_base_url": url,
        "oauth": {
            "token_url": f"{url}/services/oauth2/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH,
        },
    }
    r = await client.put(f"/v1/sources/{source_id}", json=body)
    assert r.status_code in (200, 201), r.text
    shown = (await client.get(f"/v1/sources/{source_id}")).json()
    assert shown["oauth_client_id"] == CLIENT_ID
    assert {"oauth_client_secret", "oauth_refresh_token"} <= set(shown["secrets_set"])
    assert CLIENT_SECRET not in r.text + str(shown)
    assert REFRESH not in str(shown)

    job = (
        await client.post(f"/v1/sources/{source_id}/resync", json={"deal_ids": [OPPORTUNITY]})
    ).json()

    async def finished() -> dict[str, Any] | None:
        state = (await client.get(f"/v1/sources/{source_id}/resync/{job['id']}")).json()
        return state if state["status"] in ("done", "failed") else None

    done = await eventually(finished, within=60)
    assert done["status"] == "done", done
    (stored,) = await query(
        database_url,
        "SELECT config->'oauth'->>'refresh_token' AS token FROM pipeline.sources WHERE id = :id",
        id=source_id,
    )
    assert stored.token != REFRESH
    assert stored.token in crms.salesforce.refresh_tokens, "the working token was kept"

    # A PUT that leaves the secrets out keeps them, rotated one included.
    del body["oauth"]["client_secret"], body["oauth"]["refresh_token"]
    assert (await client.put(f"/v1/sources/{source_id}", json=body)).status_code == 200
    (kept,) = await query(
        database_url,
        "SELECT config->'oauth'->>'refresh_token' AS token FROM pipeline.sources WHERE id = :id",
        id=source_id,
    )
    assert kept.token == stored.token

    # A token endpoint that is not Salesforce's is refused outright.
    body["oauth"]["token_url"] = "https://attacker.example/services/oauth2/token"
    refused = await client.put(f"/v1/sources/{source_id}", json=body)
    assert refused.status_code == 422
    assert "'attacker.example' is not a salesforce host" in refused.json()["detail"]

    # Pointed at another token endpoint, the stored secrets are not sent there: a PUT that
    # moves them must supply them again.
    body["oauth"]["token_url"] = "https://test.salesforce.com/services/oauth2/token"
    assert (await client.put(f"/v1/sources/{source_id}", json=body)).status_code == 200
    moved = (await client.get(f"/v1/sources/{source_id}")).json()
    assert "oauth_refresh_token" not in moved["secrets_set"]
    assert "oauth_client_secret" not in moved["secrets_set"]
