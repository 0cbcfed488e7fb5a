"""A deal moved into a stage the forecast configuration marks `won` (or `lost`) is won (or
lost) when its event carries no status, whatever the stage is called: a team whose won
stage is called `Signed` sees those deals in `closed_won` (so attainment, gap and coverage),
not in `open_count` and `weighted`. And a configuration that changes a stage's status
restates the deals already in it, their history included, as a replay of the stream under
it would leave them.
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


async def test_a_stage_newly_marked_won_restates_its_deals(client: httpx.AsyncClient) -> None:
    """Deals in `Signed` while it is open; a configuration then marks it won: the deals are
    won now, their versions since they entered it too (`as_of` roll-up), and earlier ones
    stay open."""
    tag = uuid.uuid4().hex[:8]
    pipeline = f"Late-{tag}"

    def config(signed_status: str) -> dict[str, Any]:
        category = "closed" if signed_status == "won" else "commit"
        signed = stage("Signed", 2, status=signed_status, forecast_category=category)
        return {
            "pipelines": [{"name": pipeline, "stages": [stage("Pitch", 1), signed]}],
            "default_pipeline": pipeline,
        }

    assert (await client.put("/v1/forecast/config", json=config("open"))).status_code == 200
    owner, deals = f"rep-{tag}", [f"late-{tag}-{i}" for i in range(3)]
    events: list[dict[str, Any]] = []
    for deal_id in deals:
        created = {
            "deal_id": deal_id,
            "owner_id": owner,
            "stage": "Pitch",
            "amount": "100",
            "currency": "XTS",
            "close_date": "2026-02-20",
        }
        events.append(event(CREATED, created, time="2026-02-01T00:00:00Z"))
        events.append(
            event(UPDATED, {"deal_id": deal_id, "stage": "Signed"}, time="2026-02-10T00:00:00Z")
        )
        events.append(
            event(UPDATED, {"deal_id": deal_id, "amount": "200"}, time="2026-02-12T00:00:00Z")
        )
    assert (await client.post("/v1/events", json=events)).status_code == 202

    async def statuses() -> list[str] | None:
        found = [(await client.get(f"/v1/deals/{d}")).json() for d in deals]
        done = all(d.get("amount") == "200" for d in found)
        return [d["status"] for d in found] if done else None

    assert await eventually(statuses) == ["open"] * 3, "Signed is open under this configuration"

    assert (await client.put("/v1/forecast/config", json=config("won"))).status_code == 200

    async def replayed() -> bool:
        return not (await client.get("/v1/forecast/config/replay")).json()["pending"]

    await eventually(replayed)
    now = [(await client.get(f"/v1/deals/{d}")).json() for d in deals]
    assert [d["status"] for d in now] == ["won"] * 3
    history = (await client.get(f"/v1/deals/{deals[0]}/history")).json()["versions"]
    assert [(v["stage"], v["status"]) for v in history] == [
        ("Pitch", "open"),
        ("Signed", "won"),
        ("Signed", "won"),
    ]

    async def row_as_of(instant: str) -> dict[str, Any]:
        r = await client.get(
            "/v1/forecast/rollup",
            params={"period": "2026-Q1", "group_by": "rep", "as_of": instant},
        )
        assert r.status_code == 200, r.text
        (row,) = [row for row in r.json()["rows"] if row["group"] == owner]
        return dict(row)

    signed = await row_as_of("2026-02-11T00:00:00Z")
    assert (signed["closed_won"], signed["open_count"]) == ("300", 0)
    pitched = await row_as_of("2026-02-05T00:00:00Z")
    assert (pitched["closed_won"], pitched["open_count"]) == ("0", 3)
