"""One bad event never stops anyone else: not other requests, not the events after it.

Against the real database and broker: a group commit the database refuses fails only the
request that carried the bad event; an event too large for the broker is refused at
intake; and a stored row the broker refuses is set aside, listed and replayable while the
rows after it flow on.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.pipeline_api.events.event_log import EventLogWriter, EventsRefused, LogRow, sent_size
from shared import topics
from shared.db import driver_dsn
from shared.events import validate_event
from shared.settings import Settings
from tests.integration.test_webhooks import (
    HubSpot,
    basic,
    dlq_items,
    hubspot,  # noqa: F401 - a fixture, used by name
    pd_event,
    pipedrive,  # noqa: F401 - a fixture, used by name
    prop,
    put_source,
    unique_account,
    wait_for,
)
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def deal_event(deal: str, **data: object) -> dict[str, object]:
    return event(
        CREATED,
        {"deal_id": deal, "name": "n", "owner_id": "r", "stage": "s", **data},
        time="2026-06-01T00:00:00Z",
    )


def row(deal: str, **data: object) -> LogRow:
    return LogRow.of(validate_event(deal_event(deal, **data)))


def counting_writer(database_url: str, commits: list[None]) -> EventLogWriter:
    """One writer, so that what is queued before it starts shares one group commit."""
    return EventLogWriter(
        driver_dsn(database_url),
        on_commit=lambda: commits.append(None),
        max_event_bytes=1 << 20,
        writers=1,
    )


async def test_a_refused_request_fails_alone_in_its_group(database_url: str) -> None:
    commits: list[None] = []
    writer = counting_writer(database_url, commits)
    good = [[row(f"grp-{uuid.uuid4().hex[:8]}")] for _ in range(10)]
    # Validation refuses NUL before the log; a row built past it is what PostgreSQL alone
    # refuses (jsonb takes no \u0000), as it would any value validation does not foresee.
    bad = [replace(row(f"grp-{uuid.uuid4().hex[:8]}"), envelope_json='{"note": "a\\u0000b"}')]
    # Queued before the writer starts, so they are sure to share one group commit.
    requests = [asyncio.ensure_future(writer.append(rows)) for rows in [*good[:5], bad, *good[5:]]]
    await asyncio.sleep(0.05)
    writer.start()
    try:
        results = await asyncio.gather(*requests, return_exceptions=True)
    finally:
        await writer.stop()
    refused = results.pop(5)
    assert isinstance(refused, EventsRefused), refused
    assert "database refused" in refused.reason
    assert results == [[True]] * 10
    assert len(commits) <= 2 * 4, "the good requests are committed in halves, not one by one"


async def test_one_bad_row_among_a_thousand_costs_a_few_statements(database_url: str) -> None:
    commits: list[None] = []
    writer = counting_writer(database_url, commits)
    deal = f"many-{uuid.uuid4().hex[:8]}"
    rows = [row(f"{deal}-{n}") for n in range(1000)]
    rows[617] = replace(rows[617], envelope_json='{"note": "a\\u0000b"}')
    writer.start()
    try:
        results = await writer.append_each(rows)
    finally:
        await writer.stop()
    refused = results.pop(617)
    assert isinstance(refused, EventsRefused), refused
    assert results == [True] * 999
    assert len(commits) <= 2 * 10, f"{len(commits)} commits for one bad row in 1000"


async def test_intake_rejects_only_the_event_the_database_refuses(
    client: httpx.AsyncClient,
) -> None:
    deal = f"nul-{uuid.uuid4().hex[:8]}"
    batch = [
        deal_event(deal),
        deal_event(f"{deal}-x", properties={"note": "a\x00b"}),
        deal_event(f"{deal}-y"),
    ]
    response = await client.post("/v1/events", json=batch)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [1]
    assert answer["rejected"][0]["id"] == batch[1]["id"]


async def test_an_event_too_large_for_the_broker_is_rejected_at_intake(
    client: httpx.AsyncClient,
) -> None:
    limit = Settings().event_max_bytes
    deal = f"big-{uuid.uuid4().hex[:8]}"
    too_big = deal_event(deal, properties={"blob": "x" * (limit + 1)})
    fits = deal_event(f"{deal}-fits", properties={"blob": "x" * (limit - 2000)})
    response = await client.post("/v1/events", json=[too_big, fits])
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert "limit" in answer["rejected"][0]["reason"]

    async def published() -> bool:
        url = f"/v1/events/{quote(str(fits['source']), safe='')}/{fits['id']}"
        return bool((await client.get(url)).json()["published"])

    await eventually(published, within=30)


async def test_an_event_postgres_prints_larger_than_it_came_is_rejected_at_intake(
    client: httpx.AsyncClient,
) -> None:
    """The relay sends jsonb's text, where `1e308` takes 309 digits: 25 KB of compact JSON
    becomes more than the broker takes, so intake must refuse it, not set it aside later."""
    probe = deal_event(f"exp-{uuid.uuid4().hex[:8]}", properties={"x": [1e308] * 3500})
    assert len(orjson.dumps(probe)) < 30_000
    response = await client.post("/v1/events", json=probe)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 0
    assert "limit" in answer["rejected"][0]["reason"]


async def test_an_event_just_under_the_limit_with_expanding_numbers_is_published(
    client: httpx.AsyncClient,
) -> None:
    limit = Settings().event_max_bytes
    deal = f"exp-fits-{uuid.uuid4().hex[:8]}"
    numbers: list[object] = [1e308, 1e-300, -2.5e20]
    count = 1
    while row(deal, properties={"x": numbers * (count * 2)}).size <= limit:
        count *= 2
    while row(deal, properties={"x": numbers * (count + 1)}).size <= limit:
        count += 1
    fits = deal_event(deal, properties={"x": numbers * count})
    assert row(deal, properties={"x": numbers * (count + 1)}).size > limit
    response = await client.post("/v1/events", json=fits)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1, response.text

    async def applied() -> bool:
        return (await client.get(f"/v1/deals/{deal}")).status_code == 200

    await eventually(applied, within=60)
    page = (await client.get("/v1/events/unpublishable", params={"limit": 1000})).json()
    assert fits["id"] not in [item["id"] for item in page["items"]]


async def test_the_intake_size_bounds_what_postgres_prints(database_url: str) -> None:
    values: list[object] = [
        {"x": [1e308, 1e-300, -2.5e20, 1.5e-7, 5e-324, 1.7976931348623157e308, 1e16]},
        {"a": 0.0001, "b": [1.0, -0.0, 123.456, 10**18], "c": "x:1e5, y", "d": {"e": {}}},
        [{"k": n * 1.1e-5, "m": n * 3.3e17} for n in range(1, 200)],
    ]
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for value in values:
                encoded = orjson.dumps(value)
                printed = (
                    await conn.execute(
                        text("SELECT octet_length(CAST(:v AS jsonb)::text)"),
                        {"v": encoded.decode()},
                    )
                ).scalar_one()
                assert printed <= sent_size(encoded) <= printed + len(encoded) // 2
    finally:
        await engine.dispose()


async def test_a_row_the_broker_refuses_is_set_aside_and_the_rest_flow(
    client: httpx.AsyncClient, database_url: str
) -> None:
    deal = f"aside-{uuid.uuid4().hex[:8]}"
    # Stored by a version without the intake limit: larger than the producer may send.
    huge = deal_event(deal, properties={"blob": "x" * (1536 * 1024)})
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            seq = (
                await conn.execute(
                    text(
                        "INSERT INTO pipeline.events (source, event_id, type, subject, topic, "
                        "partition_key, event_time, envelope) VALUES (:source, :id, :type, "
                        ":deal, :topic, :deal, :time, CAST(:envelope AS jsonb)) RETURNING seq"
                    ),
                    {
                        "source": huge["source"],
                        "id": huge["id"],
                        "type": CREATED,
                        "deal": deal,
                        "topic": topics.DEAL,
                        "time": datetime(2026, 6, 1, tzinfo=UTC),
                        "envelope": orjson.dumps(huge).decode(),
                    },
                )
            ).scalar_one()
        after = deal_event(f"{deal}-after")
        assert (await client.post("/v1/events", json=after)).status_code == 202

        async def applied() -> bool:
            return (await client.get(f"/v1/deals/{deal}-after")).status_code == 200

        await eventually(applied, within=60)

        async def listed() -> dict[str, object] | None:
            page = (await client.get("/v1/events/unpublishable", params={"limit": 1000})).json()
            return next((i for i in page["items"] if i["seq"] == seq), None)

        aside = await eventually(listed, within=30)
        assert aside["id"] == huge["id"]
        assert "MessageSizeTooLargeError" in str(aside["error"])
        metrics = (await client.get("/metrics")).text
        assert f'salesops_relay_unpublishable_total{{topic="{topics.DEAL}"}}' in metrics

        async def counted_as_set_aside() -> bool:
            metrics = (await client.get("/metrics")).text
            gauge = re.search(r"^salesops_relay_unpublishable_events (\S+)$", metrics, re.M)
            return gauge is not None and float(gauge.group(1)) >= 1

        await eventually(counted_as_set_aside, within=30)

        missing = await client.post("/v1/events/unpublishable/replay", json={"seqs": [seq + 10**9]})
        assert missing.status_code == 404
        # Replaying everything must be asked for: an empty body replays nothing.
        for vague in ({}, {"all": False}, {"all": True, "seqs": [seq]}):
            refused = await client.post("/v1/events/unpublishable/replay", json=vague)
            assert refused.status_code == 422, (vague, refused.text)
        assert await listed() is not None
        # Fixed (here: trimmed to what the broker takes), then replayed: it is published.
        fixed = deal_event(deal)
        fixed["id"], fixed["source"] = huge["id"], huge["source"]
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE pipeline.events SET envelope = CAST(:e AS jsonb) WHERE seq = :seq"),
                {"e": orjson.dumps(fixed).decode(), "seq": seq},
            )
        replay = await client.post("/v1/events/unpublishable/replay", json={"seqs": [seq]})
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"replayed": 1}

        async def deal_applied() -> bool:
            return (await client.get(f"/v1/deals/{deal}")).status_code == 200

        await eventually(deal_applied, within=60)
        assert await listed() is None
    finally:
        await engine.dispose()


async def test_a_webhook_change_holding_nul_is_set_aside_alone(
    pipedrive: tuple[httpx.AsyncClient, str],  # noqa: F811 - the fixture imported above
    stack_url: str,
) -> None:
    client, company = pipedrive
    good = pd_event("v2_deal_create_pipedream.json", company)
    bad = pd_event("v2_deal_create_pipedream.json", company)
    bad["data"] = {**bad["data"], "id": 2, "title": "a\x00b"}
    # Unmapped owner: this change is parked, so the refusal comes from the parking insert.
    bad_parked = pd_event("v2_deal_create_pipedream.json", company)
    bad_parked["data"] = {**bad["data"], "id": 3, "owner_id": 999}
    url = f"{stack_url}/v1/webhooks/pipedrive"
    answers = await asyncio.gather(
        *(
            client.post(url, json=body, headers=basic("salesops", "pd-pass"))
            for body in (bad, good, bad_parked)
        )
    )
    refused, accepted, refused_parked = answers
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == 1
    # The webhook sets a change holding NUL aside with its reason (NUL replaced in the kept
    # copy) before the database could refuse it: this request alone, and never a 503.
    for answer in (refused, refused_parked):
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["accepted"], result["parked"] + result["unsupported"]) == (0, 1), result


async def test_a_webhook_change_too_large_for_the_broker_is_parked(
    client: httpx.AsyncClient, stack_url: str
) -> None:
    company = unique_account()
    source = {"id": f"pd-big-{company}", "kind": "pipedrive", "account_id": company}
    secrets = {"current": "pd-pass", "basic_user": "salesops"}
    mapping = {
        "stages": {"1": {"stage": "s"}},
        "owners": {"123123": "r"},
        "keep_properties": ["notes"],
    }
    await put_source(client, {**source, "secrets": secrets, "mapping": mapping})
    huge = pd_event("v2_deal_create_pipedream.json", company)
    notes = {"type": "text", "value": "x" * Settings().event_max_bytes}
    huge["data"] = {**huge["data"], "custom_fields": {"notes": notes}}
    answer = await client.post(
        f"{stack_url}/v1/webhooks/pipedrive", json=huge, headers=basic("salesops", "pd-pass")
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["parked"]) == (0, 1)
    dlq = (await client.get("/v1/dlq", params={"source_id": source["id"]})).json()["items"]
    assert len(dlq) == 1
    assert "limit" in dlq[0]["reason"]
    assert dlq[0]["replayable"] is False


async def test_a_webhook_change_the_database_refuses_is_parked_and_the_rest_stored(
    hubspot: HubSpot,  # noqa: F811 - the fixture imported above
    database_url: str,
) -> None:
    """A refusal validation cannot foresee (here a constraint made for the test) costs only
    its change: HubSpot would retry a refused batch whole, Pipedrive disables the hook."""
    marker = f"refuse-{uuid.uuid4().hex[:8]}"
    constraint = f"test_{marker.replace('-', '_')}"
    engine = create_async_engine(database_url)
    t = 1_782_000_000_000
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    f"ALTER TABLE pipeline.events ADD CONSTRAINT {constraint} "
                    f"CHECK (strpos(envelope::text, '{marker}') = 0) NOT VALID"
                )
            )
        answer = await hubspot.send(
            [prop(811, "dealname", "Kept deal", t, 1), prop(812, "dealname", marker, t, 2)]
        )
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"ALTER TABLE pipeline.events DROP CONSTRAINT {constraint}"))
        await engine.dispose()
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["parked"]) == (1, 1), answer.text
    await wait_for(hubspot.client, f"hubspot:{hubspot.portal}:811", name="Kept deal")
    (parked,) = await dlq_items(hubspot.client, f"hs-{hubspot.portal}")
    assert constraint in parked["reason"]
    assert marker in str(parked["change"])
