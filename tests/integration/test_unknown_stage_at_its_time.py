"""A late change that sets a stage alone is judged against the pipeline its deal was in at
the change's time, not the deal's current one.

Expected to fail today: `deals/stage_check.py` (`refusals`, fed by `gate.refuse_unknown`
with `repository.stored_pipelines`, the deal's current pipeline) judges the late stage
against the pipeline of the deal's latest version. A valid change is dead-lettered as
`unknown_stage`, and no configuration replays it (its stage is configured, in the pipeline
the deal was in then), nor does a manual replay (judged the same way again), so the deal's
history loses it for good. Remove the xfail mark with the fix.
"""

from __future__ import annotations

import uuid
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


@pytest.mark.xfail(
    strict=True,
    reason="stage_check judges a late stage-only change against the deal's current pipeline",
)
async def test_a_late_stage_change_is_judged_by_the_pipeline_of_its_time(
    client: httpx.AsyncClient,
) -> None:
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
    deal = f"late-{tag}"
    created = event(
        CREATED,
        {"deal_id": deal, "owner_id": "r", "stage": "Qualify", "pipeline": direct},
        time="2026-02-01T00:00:00Z",
    )
    moved = event(
        UPDATED,
        {"deal_id": deal, "stage": "Referred", "pipeline": partner},
        time="2026-02-03T00:00:00Z",
    )
    await _post(client, created, moved)

    async def both_applied() -> bool:
        return len(await _history(client, deal)) == 2

    await eventually(both_applied)
    demo = event(UPDATED, {"deal_id": deal, "stage": "Demo"}, time="2026-02-02T00:00:00Z")
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
