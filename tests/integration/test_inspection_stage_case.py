"""The inspection's `stuck` rule compares stage names without regard to case, as the
metrics do: a stage's median is over every spelling of it, a run of versions in one stage
spelled two ways is one visit, and an open deal is timed from the first version of its
run whatever the spelling. In 1941 (no other test's year), inspected on its last day.

Compared by spelling, the closed deal that went `Qualify` -> `QUALIFY` -> `Won` would make
two 5-day visits (median 5 instead of 10), and the open deal would be timed from its
respelling on 15 December (16 days, under 2 x 10) instead of its return on 1 December."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.test_forecast_inspection import CONFIG, _created, _pages, _updated
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_forecast_config")]

AS_OF = "1941-12-31"


async def test_stuck_compares_stage_names_without_case(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/forecast/config", json=CONFIG)).status_code == 200
    tag = uuid.uuid4().hex[:8]
    rep, stuck = f"rep-{tag}", f"c-stuck-{tag}"
    events = [
        # Three closed deals spent 10 days in Qualify, however spelled: its median.
        _created(f"c-a-{tag}", rep, "qualify", "1941-01-01", "1941-03-01"),
        _updated(f"c-a-{tag}", "1941-01-11", stage="Won", close_date="1941-01-11"),
        _created(f"c-b-{tag}", rep, "QUALIFY", "1941-02-01", "1941-03-01"),
        _updated(f"c-b-{tag}", "1941-02-11", stage="Lost", close_date="1941-02-11"),
        _created(f"c-c-{tag}", rep, "Qualify", "1941-03-01", "1941-04-01"),
        _updated(f"c-c-{tag}", "1941-03-06", stage="QUALIFY"),
        _updated(f"c-c-{tag}", "1941-03-11", stage="Won", close_date="1941-03-11"),
        # Back in Qualify since 1 December (30 days), respelled on 15 December.
        _created(stuck, rep, "Qualify", "1941-11-01", "1942-03-01"),
        _updated(stuck, "1941-11-20", stage="Propose", properties={"budget": "1"}),
        _updated(stuck, "1941-12-01", stage="QUALIFY"),
        _updated(stuck, "1941-12-15", stage="Qualify"),
    ]
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text
    expected = [
        {
            "deal_id": stuck,
            "owner_id": rep,
            "stage": "Qualify",
            "rule": "stuck",
            "reason": "in stage 'Qualify' for 30.0 days, more than 2 x its median of 10.00 days",
        }
    ]

    async def flagged() -> list[dict[str, str]] | None:
        rows = [row for row in await _pages(client, as_of_date=AS_OF) if row["deal_id"] == stuck]
        return rows if rows == expected else None

    await eventually(flagged, within=60, interval=0.5)
