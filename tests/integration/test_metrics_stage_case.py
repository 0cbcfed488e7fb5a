"""Stage conversion counts a deal's stages whatever the letter case the CRM spelled them
in, as the roll-up and the stage check match stage names without regard to case.

A deal that went `qualify` -> `PROPOSE` -> `won` in a pipeline configured `Qualify`,
`Propose`, `Won` entered each of them.
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


async def test_stage_conversion_ignores_the_letter_case_of_stage_names(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    pipeline = f"Cased-{tag}"
    config = {
        "pipelines": [
            {
                "name": pipeline,
                "stages": [
                    stage("Qualify", 1),
                    stage("Propose", 2),
                    stage("Won", 3, forecast_category="closed", status="won"),
                ],
            }
        ],
        "default_pipeline": pipeline,
    }
    assert (await client.put("/v1/forecast/config", json=config)).status_code == 200
    rep, deal = f"rep-{tag}", f"cased-{tag}"
    created = {
        "deal_id": deal,
        "owner_id": rep,
        "stage": "qualify",
        "pipeline": pipeline,
        "amount": "100",
        "currency": "XTS",
        "created_at": "2004-03-01T00:00:00Z",
    }
    events = [
        event(CREATED, created, time="2004-03-01T00:00:00Z"),
        event(UPDATED, {"deal_id": deal, "stage": "PROPOSE"}, time="2004-03-03T00:00:00Z"),
        event(
            UPDATED,
            {"deal_id": deal, "stage": "won", "close_date": "2004-03-07"},
            time="2004-03-07T00:00:00Z",
        ),
    ]
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    params = {"from": "2004-03-01", "to": "2004-03-31", "group_by": "rep"}

    async def won() -> dict[str, Any] | None:
        rows = (await client.get("/v1/forecast/metrics", params=params)).json()["rows"]
        return next((r for r in rows if r["group"] == rep and r["won_count"] == 1), None)

    row = await eventually(won)
    entered = {s["stage"]: (s["entered"], s["advanced"]) for s in row["stages"]}
    assert entered == {"Qualify": (1, 1), "Propose": (1, 1), "Won": (1, 0)}
