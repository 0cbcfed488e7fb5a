"""A deal moved into a stage the forecast configuration marks `won` (or `lost`) is won (or
lost) when its event carries no status, whatever the stage is called.

Expected to fail today: the fold (`deals/projection.py` `StageRules`, built in `app.py`
from `SALESOPS_WON_STAGES` / `SALESOPS_LOST_STAGES`) takes a deal's status from the stage's
name alone and never reads the configured stage's `status`. A team whose won stage is
called `Signed` sees its won deals stay open: out of `closed_won` (so attainment, gap and
coverage), counted in `open_count` and `weighted`. Remove the xfail mark with the fix.
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


@pytest.mark.xfail(
    strict=True, reason="the fold decides won/lost from settings' stage names, not the config"
)
async def test_a_configured_won_stage_closes_the_deal(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    pipeline = f"Custom-{tag}"
    config = {
        "pipelines": [
            {
                "name": pipeline,
                "stages": [
                    stage("Pitch", 1, probability="40", forecast_category="commit"),
                    stage("Signed", 2, probability="100", forecast_category="closed", status="won"),
                    stage("Walked", 3, probability="0", forecast_category="omitted", status="lost"),
                ],
            }
        ],
        "default_pipeline": pipeline,
    }
    assert (await client.put("/v1/forecast/config", json=config)).status_code == 200
    owner, won, lost = f"rep-{tag}", f"signed-{tag}", f"walked-{tag}"
    events: list[dict[str, Any]] = []
    for deal_id, amount, outcome in ((won, "700", "Signed"), (lost, "300", "Walked")):
        created = {
            "deal_id": deal_id,
            "owner_id": owner,
            "stage": "Pitch",
            "pipeline": pipeline,
            "amount": amount,
            "currency": "XTS",
            "close_date": "2026-02-20",
        }
        events.append(event(CREATED, created, time="2026-02-01T00:00:00Z"))
        events.append(
            event(UPDATED, {"deal_id": deal_id, "stage": outcome}, time="2026-02-10T00:00:00Z")
        )
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text

    async def moved() -> dict[str, Any] | None:
        deals = [(await client.get(f"/v1/deals/{d}")).json() for d in (won, lost)]
        return (
            {d["deal_id"]: d for d in deals}
            if all("stage" in d for d in deals)
            and {d["stage"] for d in deals} == {"Signed", "Walked"}
            else None
        )

    deals = await eventually(moved)
    assert (deals[won]["status"], deals[lost]["status"]) == ("won", "lost")
    rollup = await client.get(
        "/v1/forecast/rollup", params={"period": "2026-Q1", "group_by": "rep"}
    )
    (row,) = [row for row in rollup.json()["rows"] if row["group"] == owner]
    assert (row["closed_won"], row["open_count"], row["weighted"]) == ("700", 0, "0")
