"""`salesops dataset load` sends the real Maven CRM sample through the public API, and the
deals read back through `GET /v1/deals` add up to what the CSV says (computed here with
the test's own CSV reading, not the loader's)."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.support.datasets import load_dataset
from tests.support.maven_expected import Expected, expected
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SOME_AGENTS = ("darcel-schlecht", "moses-frase", "anna-snelling", "violet-mclelland")


def _totals(output: str) -> tuple[int, int, int]:
    found = re.search(r"accepted (\d+), duplicates (\d+), rejected (\d+)", output)
    assert found, output
    accepted, duplicates, rejected = found.groups()
    return int(accepted), int(duplicates), int(rejected)


async def _dataset_deals(client: httpx.AsyncClient, want: Expected, status: str) -> list[Any]:
    """Every deal of the dataset with this status, page by page (other tests share the
    stack, so deals not in the CSV are left out)."""
    deals: list[Any] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"status": status, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/deals", params=params)).json()
        deals.extend(d for d in page["items"] if d["deal_id"] in want.deal_ids)
        cursor = page["next_cursor"]
        if cursor is None:
            return deals


@pytest.mark.timeout(900)
async def test_the_real_dataset_loads_through_the_api_and_adds_up(
    client: httpx.AsyncClient,
    stack_url: str,
    dataset_dir: Path,
    first_dataset_load: tuple[int, str],
) -> None:
    want = expected(dataset_dir)
    code, output = first_dataset_load
    assert code == 0, output
    accepted, duplicates, rejected = _totals(output)
    assert (accepted, duplicates, rejected) == (want.events, 0, 0)

    async def folded() -> dict[str, list[Any]] | None:
        by_status = {s: await _dataset_deals(client, want, s) for s in ("won", "lost", "open")}
        counts = Counter({s: len(deals) for s, deals in by_status.items()})
        return by_status if counts == want.by_status else None

    by_status = await eventually(folded, within=600, interval=3)
    assert sum(len(deals) for deals in by_status.values()) == len(want.deal_ids)
    won = by_status["won"]
    assert sum((Decimal(d["amount"]) for d in won), Decimal(0)) == want.won_value
    per_owner: dict[str, Decimal] = {}
    for deal in won:
        per_owner[deal["owner_id"]] = per_owner.get(deal["owner_id"], Decimal(0)) + Decimal(
            deal["amount"]
        )
    for agent in SOME_AGENTS:
        assert per_owner[agent] == want.won_value_by_owner[agent], agent
    assert per_owner == want.won_value_by_owner

    code, output = await load_dataset(stack_url, dataset_dir, ADMIN_KEY)
    assert code == 0, output
    assert _totals(output) == (0, accepted, 0), "a second load is all duplicates"
