"""The configured fiscal calendar through the API: with a February start, every endpoint
that takes a period reads `FY2026`, `2026-Q4` and `2026-01` in it (a quarter and a year by
the fiscal start, a month always the calendar month), and a call for a quarter is closed
when that fiscal quarter has ended."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import FORECASTER_KEY
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SPANS = {
    "FY2026": ("2025-02-01", "2026-02-01"),
    "2026-Q4": ("2025-11-01", "2026-02-01"),
    "2026-Q1": ("2025-02-01", "2025-05-01"),
    "2026-01": ("2026-01-01", "2026-02-01"),
}
"""Each label with a February start: the fiscal year is named by the year it ends in."""


def _span(answer: dict[str, Any]) -> tuple[str, str]:
    period = answer["period"]
    if isinstance(period, str):  # the waterfall's label, its dates beside it
        return (answer["period_start"], answer["period_end"])
    return (period["start"], period["end"])


@pytest.fixture
async def february_start(client: httpx.AsyncClient, restore_forecast_config: None) -> None:
    """Set up after `restore_forecast_config` has read what to put back (so it is never
    this document that is put back)."""
    put = await client.put("/v1/forecast/config", json={"fiscal_year_start_month": 2})
    assert put.status_code == 200, put.text


@pytest.mark.usefixtures("february_start")
@pytest.mark.parametrize("label", SPANS)
async def test_each_period_endpoint_reads_the_fiscal_calendar(
    client: httpx.AsyncClient, label: str
) -> None:
    start, end = SPANS[label]
    reads = {
        "/v1/forecast/rollup": {"group_by": "team"},
        "/v1/forecast/waterfall": {"from": f"{start}T00:00:00Z", "to": f"{end}T00:00:00Z"},
        "/v1/forecast/snapshots": {"group_by": "team"},
        "/v1/forecast/projection": {"group_by": "team"},
    }
    for path, params in reads.items():
        r = await client.get(path, params={"period": label, **params})
        assert r.status_code == 200, (path, r.text)
        assert _span(r.json()) == (start, end), path


@pytest.mark.usefixtures("february_start")
async def test_a_deal_closing_in_january_is_in_the_fiscal_year_before(
    client: httpx.AsyncClient,
) -> None:
    rep = f"fy-{uuid.uuid4().hex[:8]}"
    data = {
        "deal_id": rep,
        "owner_id": rep,
        "stage": "Won",
        "status": "won",
        "amount": "500",
        "currency": "XTS",
        "close_date": "2026-01-15",
    }
    r = await client.post("/v1/events", json=event(CREATED, data, time="2026-01-15T00:00:00Z"))
    assert r.status_code == 202, r.text

    async def closed_won(label: str) -> str | None:
        r = await client.get("/v1/forecast/rollup", params={"period": label, "group_by": "rep"})
        rows = [row for row in r.json()["rows"] if row["group"] == rep]
        return rows[0]["closed_won"] if rows else None

    assert await eventually(lambda: closed_won("2026-Q4")) == "500"
    assert await closed_won("FY2026") == "500"
    assert await closed_won("2026-01") == "500"
    assert await closed_won("2026-Q1") is None, "February 2025 to April 2025"
    assert await closed_won("FY2027") is None


@pytest.mark.usefixtures("february_start")
async def test_a_call_is_closed_by_the_end_of_its_fiscal_quarter(
    client: httpx.AsyncClient,
) -> None:
    """2027-Q1 is February to April 2026 with a February start: over, though the calendar
    quarter of that name is still to come."""
    call = {"rep_id": "fy-rep", "commit": "1", "currency": "USD", "author": "a"}
    headers = {"Authorization": f"Bearer {FORECASTER_KEY}"}
    closed = await client.post(
        "/v1/forecast/calls", json={**call, "period": "2027-Q1"}, headers=headers
    )
    assert closed.status_code == 409, closed.text
    assert closed.json()["status"] == 409
    kept = await client.post(
        "/v1/forecast/calls", json={**call, "period": "2099-Q1"}, headers=headers
    )
    assert kept.status_code == 201, kept.text
    assert (kept.json()["period_start"], kept.json()["period_end"]) == ("2098-02-01", "2098-05-01")
