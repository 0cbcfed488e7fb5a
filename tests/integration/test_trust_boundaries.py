"""Trust boundaries through the running service: which key may write which source, events
dated in the future, and secrets kept out of the log when the database fails."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.pipeline_api.app import create_app
from services.pipeline_api.crm.hubspot.signatures import hubspot_v3
from services.pipeline_api.sources import repository
from services.pipeline_api.sources.schemas import SourceIn
from shared.db import create_engine, create_sessionmaker
from tests.conftest import ADMIN_KEY, BOUND_KEY, make_settings
from tests.support.events import DELETED, event
from tests.support.infra import query, serve_in_loop
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def deleted(source: str, **attrs: Any) -> dict[str, Any]:
    return event(DELETED, {"deal_id": f"trust-{uuid.uuid4().hex[:8]}"}, source=source, **attrs)


async def post(stack_url: str, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack_url) as c:
        r = await c.post("/v1/events", json=events, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_bound_key_writes_only_its_sources_and_each_refusal_names_the_source(
    stack_url: str,
) -> None:
    mine = deleted("app://bound/eu", time=datetime.now(UTC))
    other = deleted("app://elsewhere", time=datetime.now(UTC))
    body = await post(stack_url, BOUND_KEY, [mine, other])

    assert body["accepted"] == 1
    (refused,) = body["rejected"]
    assert refused["index"] == 1
    assert refused["reason"] == "source: this API key may not write source 'app://elsewhere'"

    async with httpx.AsyncClient(
        base_url=stack_url, headers={"Authorization": f"Bearer {BOUND_KEY}"}
    ) as c:
        assert (await c.get(f"/v1/events/app:%2F%2Fbound%2Feu/{mine['id']}")).status_code == 200
        elsewhere = await c.get(f"/v1/events/app:%2F%2Felsewhere/{other['id']}")
    assert elsewhere.status_code == 403
    assert "app://elsewhere" in elsewhere.json()["detail"]


@pytest.mark.parametrize("source", ["crm://hubspot/48975575", "CRM://pipedrive/1"])
async def test_not_even_an_admin_key_writes_the_webhook_namespace(
    stack_url: str, source: str
) -> None:
    body = await post(stack_url, ADMIN_KEY, [deleted(source, time=datetime.now(UTC))])
    assert body["accepted"] == 0
    (refused,) = body["rejected"]
    assert refused["reason"].startswith(f"source: {source!r} is in the crm:// namespace")


async def test_an_event_dated_beyond_the_skew_is_rejected_and_the_rest_stored(
    stack_url: str,
) -> None:
    body = await post(
        stack_url,
        ADMIN_KEY,
        [
            deleted("app://clock", time="9000-01-01T00:00:00Z"),
            deleted("app://clock", time=datetime.now(UTC) + timedelta(minutes=10)),
            deleted("app://clock", time=datetime.now(UTC) + timedelta(minutes=1)),
        ],
    )
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert body["rejected"][0]["reason"].startswith("time: 9000-01-01T00:00:00+00:00 lies more")


async def test_a_database_error_on_a_source_put_logs_no_secret(
    client: httpx.AsyncClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A trigger makes PostgreSQL refuse this one source, whatever the request holds."""
    account = f"refuse-{uuid.uuid4().hex[:8]}"
    trigger = f"refuse_{account.replace('-', '_')}"
    engine = create_async_engine(database_url)
    ddl = [
        "CREATE OR REPLACE FUNCTION pipeline.refuse_for_test() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by a test trigger'; END $$",
        f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON pipeline.sources FOR EACH ROW "
        f"WHEN (NEW.account_id = '{account}') EXECUTE FUNCTION pipeline.refuse_for_test()",
    ]
    secrets = ("signing-s3cret-9f2", "api-t0ken-77a")
    try:
        async with engine.begin() as conn:
            for statement in ddl:
                await conn.execute(text(statement))
        with caplog.at_level(logging.INFO):
            r = await client.put(
                f"/v1/sources/{account}",
                json={
                    "id": account,
                    "kind": "pipedrive",
                    "account_id": account,
                    "secrets": {"current": secrets[0], "basic_user": "salesops"},
                    "api_token": secrets[1],
                },
            )
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger} ON pipeline.sources"))
        await engine.dispose()

    assert r.status_code >= 500
    assert "refused by a test trigger" in caplog.text, "the database error was logged"
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in r.text


async def test_a_second_source_for_the_same_crm_account_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    account = f"taken-{uuid.uuid4().hex[:8]}"
    first = {"id": f"{account}-a", "kind": "pipedrive", "account_id": account}
    assert (await client.put(f"/v1/sources/{first['id']}", json=first)).status_code == 201
    second = {**first, "id": f"{account}-b"}
    r = await client.put(f"/v1/sources/{second['id']}", json=second)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"Another source already has pipedrive account {account!r}."
    assert (await client.get(f"/v1/sources/{second['id']}")).status_code == 404
    assert (await client.get(f"/v1/sources/{first['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("kind", "urls", "reason"),
    [
        ("hubspot", {"api_base_url": "http://api.hubapi.com"}, "must use https"),
        ("hubspot", {"api_base_url": "https://evil.example"}, "is not a hubspot host"),
        ("pipedrive", {"api_base_url": "https://10.0.0.8"}, "is not a pipedrive host"),
        ("hubspot", {"api_base_url": f"https://{'a' * 64}.hubapi.com"}, "not a valid host name"),
        ("hubspot", {"api_base_url": "https://x..hubapi.com"}, "not a valid host name"),
        ("hubspot", {"api_base_url": "https://xn--zz.hubapi.com"}, "is not a URL"),
        (
            "salesforce",
            {"oauth": {"client_id": "c", "token_url": "https://169.254.169.254/token"}},
            "is not a salesforce host",
        ),
    ],
)
async def test_a_source_whose_re_sync_would_call_elsewhere_is_refused(
    client: httpx.AsyncClient, kind: str, urls: dict[str, Any], reason: str
) -> None:
    source_id = f"outbound-{uuid.uuid4().hex[:8]}"
    r = await client.put(
        f"/v1/sources/{source_id}",
        json={"id": source_id, "kind": kind, "account_id": source_id, **urls},
    )
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"]
    assert (await client.get(f"/v1/sources/{source_id}")).status_code == 404


async def test_a_stored_source_pointing_elsewhere_is_refused_again_when_its_re_sync_runs(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """A source written around the API (an older row, a manual edit) meets the same rule
    when its re-sync job starts, before any request carries its token."""
    source = SourceIn.model_validate(
        {
            "id": f"outbound-{uuid.uuid4().hex[:8]}",
            "kind": "hubspot",
            "account_id": uuid.uuid4().hex[:10],
            "api_base_url": "https://collector.evil.example",
            "api_token": "hs-t0ken-never-sent",
        }
    )
    engine = create_engine(database_url, application_name="trust-test")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await repository.upsert_source(session, source=source)
    finally:
        await engine.dispose()
    job = (await client.post(f"/v1/sources/{source.id}/resync", json={"deal_ids": ["1"]})).json()

    async def finished() -> dict[str, Any] | None:
        state: dict[str, Any] = (
            await client.get(f"/v1/sources/{source.id}/resync/{job['id']}")
        ).json()
        return state if state["status"] in ("done", "failed") else None

    done = await eventually(finished, within=60)
    assert done["status"] == "failed"
    assert "'collector.evil.example' is not a hubspot host" in done["error"]
    assert "hs-t0ken-never-sent" not in done["error"]


async def test_webhooks_follow_the_future_setting_and_a_parked_change_is_stored_once_due(
    database_url: str, kafka_bootstrap: str
) -> None:
    """A pipeline API allowing 1 s of skew and looking for due changes every 0.2 s: a
    HubSpot change dated 3 s ahead is parked (the 5-minute default would store it), then
    stored without anyone replaying it once its time has come."""
    settings = make_settings(
        database_url, kafka_bootstrap, event_max_future_seconds=1, future_replay_seconds=0.2
    )
    portal = str(uuid.uuid4().int % 10**9)
    secret = "hs-future-secret"
    async with (
        serve_in_loop(create_app(settings)) as base,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as c,
    ):
        put = await c.put(
            f"/v1/sources/hs-{portal}",
            json={
                "id": f"hs-{portal}",
                "kind": "hubspot",
                "account_id": portal,
                "secrets": {"current": secret},
            },
        )
        assert put.status_code == 201, put.text
        ahead = int((datetime.now(UTC) + timedelta(seconds=3)).timestamp() * 1000)
        item = {
            "eventId": 1,
            "subscriptionId": 1,
            "portalId": int(portal),
            "appId": 1,
            "occurredAt": ahead,
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
            "objectId": 4242,
            "propertyName": "dealname",
            "propertyValue": "Dated ahead",
            "changeSource": "CRM_UI",
        }
        body = json.dumps([item])
        url = f"{base}/v1/webhooks/hubspot"
        stamp = str(int(time.time() * 1000))
        r = await c.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", url, body, stamp),
                "X-HubSpot-Request-Timestamp": stamp,
                "Authorization": "",
            },
        )
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["parked"]) == (0, 1)

        async def stored() -> Any:
            rows = await query(
                database_url,
                "SELECT p.replayed_at, e.envelope FROM pipeline.parked_events p "
                "LEFT JOIN pipeline.events e ON e.source = :source AND e.subject = :deal "
                "WHERE p.source_id = :id",
                source=f"crm://hubspot/{portal}",
                deal=f"hubspot:{portal}:4242",
                id=f"hs-{portal}",
            )
            return rows[0] if rows and rows[0].replayed_at and rows[0].envelope else None

        row = await eventually(stored, within=30)
    assert row.envelope["data"]["name"] == "Dated ahead"
