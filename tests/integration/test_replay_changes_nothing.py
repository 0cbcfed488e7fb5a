"""Replaying the stream changes nothing (issue 8, Done when): a generated stream of deal
events (creates, updates of amount, stage, close date, owner and category, deletes,
duplicates, late events, a stage the configuration does not know) and reference events
(rep and team upserts, quotas), applied through the worker's own dispatch in batch
transactions as its consumer applies them, leaves every forecast table it feeds, the metrics
summary (stage visits and creations) and the roll-up, waterfall and metrics answers
exactly as they are when the whole stream is delivered again, in order or shuffled. The
same stream delivered shuffled from the start, under other names, leaves the same digest
too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import consumer_spec
from services.forecast_worker.summary.summariser import summarise
from shared import topics
from shared.consumer import ConsumerSpec, apply_records
from shared.db import create_engine, create_sessionmaker
from shared.dispatch import Record
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.support.events import CREATED, DELETED, UPDATED, event

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "forecast.example.yaml"
REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v2"
QUOTA = "com.salesops.quota.set.v1"
CURRENCY = "XTS"
T0 = datetime(2026, 4, 1, tzinfo=UTC)
SOURCE = "test://replay"

DEAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "amount": st.sampled_from(["1000", "2500.50", "99999.99"]),
    # Mystery is in no pipeline of the example configuration: dead-lettered, every time.
    "stage": st.sampled_from(["Prospecting", "Engaging", "Won", "Lost", "Mystery"]),
    "close_date": st.sampled_from(["2026-04-20", "2026-05-31", "2026-07-10"]),
    "owner_id": st.sampled_from(["r0", "r1", "r2"]),
    "forecast_category": st.sampled_from(["pipeline", "commit", "best_case"]),
}


@pytest.fixture
async def _example_config(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The example configuration for the test, then what was there (which replays, so
    applies, the Mystery dead letters: they are someone else's digest then)."""
    before = (await client.get("/v1/forecast/config")).json()
    put = await client.put("/v1/forecast/config", json=yaml.safe_load(EXAMPLE.read_text()))
    assert put.status_code == 200, put.text
    yield
    assert (await client.put("/v1/forecast/config", json=before)).status_code == 200


def _when(data: st.DataObject) -> dict[str, Any]:
    """A CRM time (repeats make exact ties) and sometimes a sequence."""
    hours = data.draw(st.integers(0, 40)) * 12
    sequence = data.draw(st.sampled_from([None, 1, 2]))
    return {"time": T0 + timedelta(hours=hours), "sequence": sequence}


def _stream(data: st.DataObject) -> list[dict[str, Any]]:
    """Events with plain names (r0, A, d0, ...); `_named` tags them per run."""
    out: list[dict[str, Any]] = []
    for team, region in (("A", "north"), ("B", "south")):
        effectives = st.sampled_from(["2026-01-01", "2026-05-01"])
        for effective in data.draw(st.lists(effectives, min_size=1, max_size=2)):
            body = {"team_id": team, "name": team, "manager_id": f"m{team}", "region": region}
            out.append(event(TEAM, {**body, "effective_from": effective}, **_when(data)))
    for rep in ("r0", "r1", "r2"):
        for effective in data.draw(
            st.lists(
                st.sampled_from(["2026-01-01", "2026-04-10", "2026-05-15"]), min_size=1, max_size=2
            )
        ):
            body = {"rep_id": rep, "name": rep, "team_id": data.draw(st.sampled_from("AB"))}
            out.append(event(REP, {**body, "effective_from": effective}, **_when(data)))
    for quota_id, owner in (("q-rep", {"rep_id": "r0"}), ("q-team", {"team_id": "A"})):
        for amount in data.draw(st.lists(st.sampled_from(["5000", "8000"]), max_size=2)):
            body = {"quota_id": quota_id, **owner, "amount": amount, "currency": CURRENCY}
            period = {"period_start": "2026-04-01", "period_end": "2026-06-30"}
            out.append(event(QUOTA, {**body, **period}, **_when(data)))
    deals = data.draw(st.integers(2, 4))
    for deal in range(deals):
        fields = {name: data.draw(DEAL_FIELDS[name]) for name in DEAL_FIELDS}
        created = {"deal_id": f"d{deal}", **fields, "currency": CURRENCY}
        out.append(event(CREATED, created, **_when(data)))
    changes = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, deals - 1),
                st.sampled_from([CREATED, UPDATED, UPDATED, UPDATED, DELETED]),
                st.lists(st.sampled_from(sorted(DEAL_FIELDS)), min_size=1, max_size=3),
            ),
            max_size=20,
        )
    )
    for deal, event_type, names in changes:
        change: dict[str, Any] = {"deal_id": f"d{deal}"}
        if event_type != DELETED:
            change.update({name: data.draw(DEAL_FIELDS[name]) for name in names})
            if "amount" in change:
                change["currency"] = CURRENCY
        out.append(event(event_type, change, **_when(data)))
    return out


_NAMED = ("rep_id", "team_id", "manager_id", "owner_id", "deal_id", "quota_id")


def _named(events: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """The stream under this run's names: every id, and every event id, tagged."""
    return [
        {
            **ev,
            "id": f"{tag}-{ev['id']}",
            "source": SOURCE,
            "data": {k: f"{tag}-{v}" if k in _NAMED else v for k, v in ev["data"].items()},
        }
        for ev in events
    ]


def _records(events: list[dict[str, Any]], first_offset: int) -> list[Record]:
    return [
        Record(
            topics.DEAL if "deal_id" in ev["data"] else topics.REFERENCE,
            0,
            first_offset + n,
            orjson.dumps(ev),
        )
        for n, ev in enumerate(events)
    ]


async def _deliver(
    engine: AsyncEngine, spec: ConsumerSpec, records: list[Record], cuts: list[int]
) -> None:
    """In batches cut at `cuts`, each in its own transaction, as the consumer applies them."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(records)), len(records)]
    for a, b in pairwise(bounds):
        if b > a:
            async with engine.begin() as conn:
                await apply_records(conn, records[a:b], spec=spec)


_TABLES = {
    "deals": "SELECT * FROM forecast.deals WHERE deal_id LIKE :p ORDER BY deal_id",
    "deal_versions": "SELECT * FROM forecast.deal_versions WHERE deal_id LIKE :p "
    "ORDER BY deal_id, version",
    "deal_changes": "SELECT * FROM forecast.deal_changes WHERE deal_id LIKE :p "
    "ORDER BY source, event_id",
    "hierarchy_changes": "SELECT * FROM forecast.hierarchy_changes WHERE entity_id LIKE :p "
    "ORDER BY source, event_id",
    "rep_assignments": "SELECT * FROM forecast.rep_assignments WHERE rep_id LIKE :p "
    "ORDER BY rep_id, valid_from",
    "teams": "SELECT * FROM forecast.teams WHERE team_id LIKE :p ORDER BY team_id, valid_from",
    "quotas": "SELECT * FROM forecast.quotas WHERE quota_id LIKE :p ORDER BY quota_id",
    "quota_changes": "SELECT * FROM forecast.quota_changes WHERE quota_id LIKE :p "
    "ORDER BY event_source, event_id",
    "dead_letters": "SELECT event_source, event_id, reason, payload, replayed_at IS NULL AS open "
    "FROM forecast.dead_letters WHERE event_id LIKE :p ORDER BY event_id, id",
    "stage_visits": "SELECT * FROM forecast.stage_visits WHERE deal_id LIKE :p "
    "ORDER BY deal_id, visit",
    "deal_creations": "SELECT * FROM forecast.deal_creations WHERE deal_id LIKE :p "
    "ORDER BY deal_id",
}
# When a row was written, not what it says: the one thing a replay may change.
_WRITTEN_AT = {"updated_at", "applied_at"}

_ANSWERS = [
    ("/v1/forecast/rollup", {"period": "2026-Q2", "group_by": "rep"}),
    ("/v1/forecast/rollup", {"period": "2026-Q2", "group_by": "team"}),
    (
        "/v1/forecast/waterfall",
        {"period": "2026-Q2", "from": "2026-04-05T00:00:00Z", "to": "2026-05-20T00:00:00Z"}
        | {"group_by": "rep"},
    ),
    ("/v1/forecast/metrics", {"from": "2026-04-01", "to": "2026-07-31", "group_by": "rep"}),
]


async def _digest(engine: AsyncEngine, client: httpx.AsyncClient, tag: str) -> str:
    """Every row the run's stream fed (the metrics summary caught up first, as the
    summariser or a metrics request does), and the run's rows of each answer, as one text
    in which the run's tag reads TAG (so two runs under different names compare)."""
    await summarise(create_sessionmaker(engine))
    found: dict[str, Any] = {}
    async with engine.connect() as conn:
        for name, sql in _TABLES.items():
            rows = await conn.execute(text(sql), {"p": f"{tag}-%"})
            found[name] = [
                {k: v for k, v in r._mapping.items() if k not in _WRITTEN_AT} for r in rows
            ]
    for path, params in _ANSWERS:
        r = await client.get(path, params=params)
        assert r.status_code == 200, r.text
        found[f"{path} {params}"] = [row for row in r.json()["rows"] if tag in (row["group"] or "")]
    assert found["hierarchy_changes"], "the digest sees the run"
    return (
        orjson.dumps(found, default=str, option=orjson.OPT_SORT_KEYS).decode().replace(tag, "TAG")
    )


@pytest.mark.usefixtures("_example_config")
@pytest.mark.timeout(600)
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_replaying_the_stream_changes_nothing(
    client: httpx.AsyncClient, database_url: str, data: st.DataObject
) -> None:
    plain = _stream(data)
    redelivered = data.draw(st.lists(st.sampled_from(plain), max_size=6))
    delivered = data.draw(st.permutations([*plain, *redelivered]))
    shuffled = data.draw(st.permutations(delivered))
    cuts = data.draw(st.lists(st.integers(1, len(delivered)), max_size=3))
    spec = consumer_spec(StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES))
    engine = create_engine(database_url, application_name="test-replay", pool_size=1)
    try:
        tag = uuid.uuid4().hex[:10]
        stream = _named(delivered, tag)
        await _deliver(engine, spec, _records(stream, 0), cuts)
        first = await _digest(engine, client, tag)
        deal_events = {ev["id"] for ev in stream if "deal_id" in ev["data"]}
        kept = orjson.loads(first)
        assert len(kept["deal_changes"]) + len(kept["dead_letters"]) == len(deal_events), (
            "each deal event stored once, or dead-lettered once"
        )
        assert all(
            letter["reason"].startswith("unknown_stage: stage 'Mystery'")
            for letter in kept["dead_letters"]
        )

        await _deliver(engine, spec, _records(stream, len(stream)), cuts)
        assert await _digest(engine, client, tag) == first, "the stream read again"
        again = _named(shuffled, tag)
        await _deliver(engine, spec, _records(again, 2 * len(stream)), [len(again) // 2])
        assert await _digest(engine, client, tag) == first, "a shuffled redelivery"

        other = uuid.uuid4().hex[:10]
        await _deliver(engine, spec, _records(_named(shuffled, other), 0), cuts)
        assert await _digest(engine, client, other) == first, "shuffled from the start"
    finally:
        await engine.dispose()
