"""A deal event naming a stage or pipeline the forecast configuration does not know is
dead-lettered with the reason, and applied, where it belongs in its deal's history, once a
configuration that knows it is stored. An unconfigured deployment checks nothing."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import httpx
import pytest

from tests.support.events import CREATED, UPDATED, event
from tests.support.forecast_config import stage
from tests.support.waiting import eventually

# The configuration is one document for the whole stack: each test puts back what was there
# (whose replay applies whatever these tests left dead-lettered, and is waited for).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_forecast_config")]


def _config(pipeline: str, *stages: str) -> dict[str, Any]:
    return {
        "pipelines": [{"name": pipeline, "stages": [stage(s, n) for n, s in enumerate(stages, 1)]}],
        "default_pipeline": pipeline,
    }


async def _post(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def _letters(
    client: httpx.AsyncClient, event_ids: set[str], *, include_replayed: bool = False
) -> dict[str, dict[str, Any]]:
    """The dead letters of these events, by event id."""
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, "include_replayed": include_replayed}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/forecast/dead-letters", params=params)).json()
        out.update({i["event_id"]: i for i in page["items"] if i["event_id"] in event_ids})
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def _replay_done(client: httpx.AsyncClient) -> bool:
    return not (await client.get("/v1/forecast/config/replay")).json()["pending"]


async def _open_unknown(client: httpx.AsyncClient) -> set[str]:
    """The event ids of every open letter a configuration could mend, whoever's."""
    out: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/forecast/dead-letters", params=params)).json()
        out |= {
            i["event_id"]
            for i in page["items"]
            if i["reason"].startswith(("unknown_stage: ", "unknown_pipeline: "))
        }
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def _history(client: httpx.AsyncClient, deal_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/deals/{deal_id}/history")
    return list(r.json()["versions"]) if r.status_code == 200 else []


async def test_unknown_stages_wait_in_the_dlq_until_a_configuration_knows_them(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    pipeline, mystery, other = f"P-{tag}", f"Mystery-{tag}", f"Other-{tag}"
    put = await client.put("/v1/forecast/config", json=_config(pipeline, "Qualify", "Propose"))
    assert put.status_code == 200, put.text
    moved, unborn, kept, partner = (f"u-{n}-{tag}" for n in ("moved", "unborn", "kept", "p"))

    def at(day: int) -> str:
        return f"2026-02-{day:02d}T00:00:00Z"

    created = event(
        CREATED,
        {"deal_id": moved, "owner_id": "r", "stage": "qualify", "amount": "10", "currency": "EUR"},
        time=at(1),
    )
    into_mystery = event(UPDATED, {"deal_id": moved, "stage": mystery}, time=at(2))
    raised = event(UPDATED, {"deal_id": moved, "amount": "30"}, time=at(3))
    born_unknown = event(
        CREATED, {"deal_id": unborn, "owner_id": "r", "stage": mystery}, time=at(1)
    )
    kept_created = event(
        CREATED, {"deal_id": kept, "owner_id": "r", "stage": "Propose"}, time=at(1)
    )
    into_other = event(UPDATED, {"deal_id": kept, "stage": other}, time=at(4))
    in_partners = event(
        CREATED,
        {"deal_id": partner, "owner_id": "r", "stage": "Qualify", "pipeline": f"Partners-{tag}"},
        time=at(1),
    )
    await _post(
        client, created, into_mystery, raised, born_unknown, kept_created, into_other, in_partners
    )
    refused = {e["id"] for e in (into_mystery, born_unknown, into_other, in_partners)}

    async def all_seen() -> dict[str, dict[str, Any]] | None:
        letters = await _letters(client, refused)
        settled = len(await _history(client, moved)) == 2 and await _history(client, kept)
        return letters if len(letters) == len(refused) and settled else None

    letters = await eventually(all_seen)
    assert letters[into_mystery["id"]]["reason"] == (
        f"unknown_stage: stage '{mystery}' is not in pipeline '{pipeline}' "
        "of the forecast configuration"
    )
    assert letters[in_partners["id"]]["reason"] == (
        f"unknown_pipeline: pipeline 'Partners-{tag}' is not in the forecast configuration"
    )
    assert (await client.get(f"/v1/deals/{unborn}")).status_code == 404
    assert (await client.get(f"/v1/deals/{partner}")).status_code == 404
    before = await _history(client, moved)
    assert [(v["stage"], v["amount"]) for v in before] == [("qualify", "10"), ("qualify", "30")]
    assert [v["stage"] for v in await _history(client, kept)] == ["Propose"], "its earlier state"

    still = await client.post(f"/v1/forecast/dead-letters/{letters[into_other['id']]['id']}/replay")
    assert still.status_code == 422
    assert f"unknown_stage: stage '{other}'" in still.json()["detail"]

    await eventually(partial(_replay_done, client))  # the first configuration's replay
    waiting = await _open_unknown(client)
    assert refused <= waiting
    put = await client.put(
        "/v1/forecast/config", json=_config(pipeline, "Qualify", "Propose", mystery)
    )
    assert put.status_code == 200, put.text
    assert int(put.headers["X-Dead-Letters-To-Replay"]) == len(waiting), "counted once each"

    async def replayed() -> list[dict[str, Any]] | None:
        """The moved deal's history, once the letters the new configuration knows are
        marked replayed and the replay is done (it runs after the PUT committed)."""
        finished = await _replay_done(client)
        after = await _letters(client, refused, include_replayed=True)
        done = {i for i, letter in after.items() if letter["replayed_at"] is not None}
        history = await _history(client, moved)
        mended = done == {into_mystery["id"], born_unknown["id"]} and len(history) == 3
        return history if mended and finished else None

    history = await eventually(replayed)
    assert [(v["stage"], v["amount"], v["valid_from"][:10]) for v in history] == [
        ("qualify", "10", "2026-02-01"),
        (mystery, "10", "2026-02-02"),
        (mystery, "30", "2026-02-03"),
    ], "the late change lands where it belongs, and the later one keeps it"
    assert [v["valid_to"] for v in history[:-1]] == [v["valid_from"] for v in history[1:]]
    assert (await client.get(f"/v1/deals/{unborn}")).json()["stage"] == mystery
    assert (await client.get(f"/v1/deals/{kept}")).json()["stage"] == "Propose"
    assert (await client.get(f"/v1/deals/{partner}")).status_code == 404

    assert set(await _letters(client, refused)) == {into_other["id"], in_partners["id"]}


async def test_an_unconfigured_deployment_dead_letters_no_stage(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/forecast/config", json={})).status_code == 200
    deal = f"u-free-{uuid.uuid4().hex[:8]}"
    created = event(
        CREATED,
        {"deal_id": deal, "owner_id": "r", "stage": "Anything", "pipeline": "Whatever"},
        time="2026-02-01T00:00:00Z",
    )
    await _post(client, created)

    async def applied() -> bool:
        return (await client.get(f"/v1/deals/{deal}")).status_code == 200

    await eventually(applied)
    assert await _letters(client, {created["id"]}, include_replayed=True) == {}
