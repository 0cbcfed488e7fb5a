"""A deal in a currency the comp engine cannot convert waits, listed with the reason, and is
posted once the rate arrives (the rate's PUT marks every rep for recalculation)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import REP_KEY
from tests.support.comp_stack import FLAT_PLAN, on_plan, won_deal
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = FLAT_PLAN


async def waiting_deal(client: httpx.AsyncClient, letter: str) -> tuple[str, str, str]:
    """A rep on the flat plan and a deal of theirs won in a currency of its own (`letter`
    + 2 letters of a random tag), so no other test's rate converts it: (rep, deal,
    currency)."""
    tag = uuid.uuid4().hex[:8]
    rep, deal = f"rep-{tag}", f"d-{tag}"
    currency = letter + "".join(chr(ord("A") + int(c, 16) % 26) for c in tag[:2])
    await on_plan(client, rep=rep, plan_id=f"p-{tag}", document=PLAN, start="2025-01-01")
    created = won_deal(deal, rep, "1000", currency, "2025-03-03")
    assert (await client.post("/v1/events", json=[created])).status_code == 202
    return rep, deal, currency


async def test_deal_without_a_rate_waits_then_posts(client: httpx.AsyncClient) -> None:
    rep, deal, currency = await waiting_deal(client, "X")

    async def waits() -> dict[str, Any] | None:
        rows = (await client.get("/v1/comp/waiting", params={"rep_id": rep})).json()["items"]
        return next((w for w in rows if w["subject"] == deal), None)

    wait = await eventually(waits)
    assert wait["rep_id"] == rep
    assert f"{currency}->USD" in wait["reason"]
    r = await client.get("/v1/comp/waiting", params={"rep_id": rep}, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    header, *rows = r.text.strip().split("\r\n")
    assert header == "rep_id,subject,reason,since"
    assert any(row.startswith(f"{rep},{deal},") for row in rows)
    assert (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"] == []

    rate = {"base": currency, "quote": "USD", "day": "2025-01-01", "rate": "1.25"}
    assert (await client.put("/v1/comp/fx-rates", json={"rates": [rate]})).status_code == 200

    async def posted() -> list[dict[str, Any]] | None:
        items = (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"]
        return items or None

    (line,) = await eventually(posted)
    assert Decimal(line["amount"]) == Decimal("125.00")
    assert await waits() is None


async def test_fx_wait_is_a_dead_letter_listed_replayed_and_resolved(
    client: httpx.AsyncClient,
) -> None:
    """The same wait through the operators' dead-letter API: listed (JSON and CSV, by rep
    and by part of its reason) to comp admins only, replayable, and gone once the rate is
    posted."""
    rep, deal, currency = await waiting_deal(client, "Y")

    async def letters(**params: str) -> list[dict[str, Any]]:
        r = await client.get("/v1/comp/dead-letters", params={"rep_id": rep, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    (letter,) = await eventually(letters)
    assert (letter["subject"], letter["rep_id"]) == (deal, rep)
    assert f"{currency}->USD" in letter["reason"]
    assert await letters(reason=f"{currency.lower()}->usd") == [letter]
    assert await letters(reason="no such reason") == []

    csv_page = await client.get("/v1/comp/dead-letters", params={"rep_id": rep, "format": "csv"})
    assert csv_page.headers["content-type"].startswith("text/csv")
    header, row = csv_page.text.strip().split("\r\n")
    assert header == "id,rep_id,subject,reason,since"
    assert row.startswith(f"{letter['id']},{rep},{deal},")

    first = (await client.get("/v1/comp/dead-letters", params={"limit": 1})).json()
    (top,) = first["items"]
    after = await client.get("/v1/comp/dead-letters", params={"cursor": first["next_cursor"]})
    assert all(item["id"] > top["id"] for item in after.json()["items"])
    bad_cursor = await client.get("/v1/comp/dead-letters", params={"cursor": "%%%"})
    assert bad_cursor.status_code == 400
    assert bad_cursor.headers["content-type"] == "application/problem+json"

    rep_key = {"Authorization": f"Bearer {REP_KEY}"}
    assert (await client.get("/v1/comp/dead-letters", headers=rep_key)).status_code == 403

    missing = await client.post("/v1/comp/dead-letters/999999999999/replay")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    replayed = await client.post(f"/v1/comp/dead-letters/{letter['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {"letter": letter, "recalculation": "queued"}

    await asyncio.sleep(2)  # ten rounds of the recalculation's 0.2 s poll
    # Still no rate: the wait goes on under the same id, since the same time.
    assert await letters() == [letter]

    rate = {"base": currency, "quote": "USD", "day": "2025-01-01", "rate": "2"}
    assert (await client.put("/v1/comp/fx-rates", json={"rates": [rate]})).status_code == 200

    async def resolved() -> bool:
        return await letters() == []

    await eventually(resolved)
    (line,) = (await client.get("/v1/comp/ledger", params={"rep_id": rep})).json()["items"]
    assert Decimal(line["amount"]) == Decimal("200.00")
