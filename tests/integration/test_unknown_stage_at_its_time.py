"""A late change that sets a stage alone is judged against the pipeline its deal was in at
the change's time, not the deal's current one (`deals/stage_check.py`): a valid change is
kept, where the current pipeline would have dead-lettered it for good (no configuration
replays it: its stage is configured, in the pipeline the deal was in then), and a change
naming a stage of a pipeline the deal was not yet in is refused, where the current one would
have put it in its history under a pipeline without that stage. A change older than the
deal's first pipeline is in the default pipeline, as the fold holds it; one batch is judged
as its changes would be one by one in order.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import httpx
import pytest

from tests.support.events import CREATED, UPDATED, event
from tests.support.forecast_config import stage
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_forecast_config")]


async def _post(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def _history(client: httpx.AsyncClient, deal_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/deals/{deal_id}/history")
    return list(r.json()["versions"]) if r.status_code == 200 else []


async def _letter(client: httpx.AsyncClient, event_id: str) -> dict[str, Any] | None:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/forecast/dead-letters", params=params)).json()
        for item in page["items"]:
            if item["event_id"] == event_id:
                return dict(item)
        cursor = page["next_cursor"]
        if cursor is None:
            return None


def _at(day: int, hour: int = 0) -> str:
    return f"2026-02-{day:02d}T{hour:02d}:00:00Z"


async def _configure(client: httpx.AsyncClient) -> tuple[str, str]:
    """Two pipelines of their own, the first the default: their names."""
    tag = uuid.uuid4().hex[:8]
    direct, partner = f"Direct-{tag}", f"Partner-{tag}"
    config = {
        "pipelines": [
            {"name": direct, "stages": [stage("Qualify", 1), stage("Demo", 2)]},
            {"name": partner, "stages": [stage("Referred", 1)]},
        ],
        "default_pipeline": direct,
    }
    assert (await client.put("/v1/forecast/config", json=config)).status_code == 200
    return direct, partner


def _created(deal: str, stage: str, pipeline: str, *, day: int) -> dict[str, Any]:
    data = {"deal_id": deal, "owner_id": "r", "stage": stage, "pipeline": pipeline}
    return event(CREATED, data, time=_at(day))


def _updated(deal: str, *, day: int, hour: int = 0, **fields: str) -> dict[str, Any]:
    return event(UPDATED, {"deal_id": deal, **fields}, time=_at(day, hour))


async def _applied(client: httpx.AsyncClient, deal: str, versions: int) -> None:
    async def done() -> bool:
        return len(await _history(client, deal)) == versions

    await eventually(done)


def _moved(prefix: str, direct: str, partner: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A deal created in `direct` on 1 February and moved to `partner` on the 3rd: its id
    and both events."""
    deal = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = _created(deal, "Qualify", direct, day=1)
    return deal, created, _updated(deal, day=3, stage="Referred", pipeline=partner)


def _places(history: list[dict[str, Any]]) -> list[tuple[str | None, str, str]]:
    return [(v["pipeline"], v["stage"], v["valid_from"][:13]) for v in history]


async def test_a_late_stage_change_is_judged_by_the_pipeline_of_its_time(
    client: httpx.AsyncClient,
) -> None:
    direct, partner = await _configure(client)
    deal, created, moved = _moved("late", direct, partner)
    await _post(client, created, moved)
    await _applied(client, deal, 2)
    demo = _updated(deal, day=2, stage="Demo")
    await _post(client, demo)

    async def settled() -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
        """The deal's history and the Demo change's dead letter, once either shows it."""
        history, letter = await _history(client, deal), await _letter(client, demo["id"])
        return (history, letter) if len(history) == 3 or letter is not None else None

    history, letter = await eventually(settled)
    assert letter is None, letter["reason"]
    assert [(v["pipeline"], v["stage"]) for v in history] == [
        (direct, "Qualify"),
        (direct, "Demo"),
        (partner, "Referred"),
    ], "the Demo change of 2 February, in the pipeline the deal was in then"


async def test_late_changes_are_refused_by_the_pipeline_of_their_time(
    client: httpx.AsyncClient,
) -> None:
    direct, partner = await _configure(client)
    moving, *events = _moved("moving", direct, partner)
    unborn = f"unborn-{uuid.uuid4().hex[:8]}"
    await _post(client, *events, _created(unborn, "Referred", partner, day=2))
    await _applied(client, moving, 2)
    await _applied(client, unborn, 1)
    too_soon = _updated(moving, day=2, stage="Referred")
    moved_sooner = _updated(moving, day=2, hour=12, stage="Referred", pipeline=partner)
    before_birth = _updated(unborn, day=1, stage="Referred")
    default_demo = _updated(unborn, day=1, hour=12, stage="Demo")
    await _post(client, too_soon, moved_sooner, before_birth, default_demo)
    await _applied(client, moving, 3)
    await _applied(client, unborn, 2)

    for refused, pipeline in ((too_soon, direct), (before_birth, direct)):
        letter = await eventually(partial(_letter, client, refused["id"]))
        assert letter["reason"] == (
            f"unknown_stage: stage 'Referred' is not in pipeline '{pipeline}' "
            "of the forecast configuration"
        ), "the deal was in Direct then, or in no pipeline: the default"
    assert _places(await _history(client, moving)) == [
        (direct, "Qualify", "2026-02-01T00"),
        (partner, "Referred", "2026-02-02T12"),
        (partner, "Referred", "2026-02-03T00"),
    ], "a late change naming its pipeline is read in it"
    assert _places(await _history(client, unborn)) == [
        (None, "Demo", "2026-02-01T12"),
        (partner, "Referred", "2026-02-02T00"),
    ], "before its creation the deal is in no pipeline: Demo of the default one"


async def test_a_batch_is_judged_in_its_deals_order_not_its_arrival_order(
    client: httpx.AsyncClient,
) -> None:
    direct, partner = await _configure(client)
    deal, created, moved = _moved("batch", direct, partner)
    demo = _updated(deal, day=2, stage="Demo")
    referred = _updated(deal, day=4, stage="Referred")
    too_soon = _updated(deal, day=2, hour=12, stage="Referred")
    # Split into batches anyhow, in this order, the outcome is the same.
    await _post(client, created, moved, demo, too_soon, referred)
    await _applied(client, deal, 4)

    letter = await eventually(partial(_letter, client, too_soon["id"]))
    assert letter["reason"].startswith(
        f"unknown_stage: stage 'Referred' is not in pipeline '{direct}'"
    )
    assert _places(await _history(client, deal)) == [
        (direct, "Qualify", "2026-02-01T00"),
        (direct, "Demo", "2026-02-02T00"),
        (partner, "Referred", "2026-02-03T00"),
        (partner, "Referred", "2026-02-04T00"),
    ]
