"""Reference events reach the forecast worker: an effective-dated hierarchy, quotas, and
invoices it ignores on purpose, all through the real stack."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import sys
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from services.forecast_worker.hierarchy import repository as hierarchy_repository
from services.forecast_worker.hierarchy.handler import apply_hierarchy
from services.forecast_worker.quotas import repository as quota_repository
from services.forecast_worker.quotas.handler import set_quotas
from shared.events import validate_event
from tests.conftest import ADMIN_KEY
from tests.support.events import event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REP = "com.salesops.rep.upserted.v1"
TEAM_V1 = "com.salesops.team.upserted.v1"
TEAM_V2 = "com.salesops.team.upserted.v2"
QUOTA = "com.salesops.quota.set.v1"
INVOICE = "com.salesops.invoice.paid.v1"
ROOT = Path(__file__).resolve().parents[2]


async def post(client: httpx.AsyncClient, *events: dict[str, Any]) -> None:
    r = await client.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def rep_on(client: httpx.AsyncClient, rep_id: str, day: str) -> dict[str, Any] | None:
    r = await client.get("/v1/forecast/hierarchy", params={"as_of": day})
    assert r.status_code == 200, r.text
    return next((row for row in r.json()["items"] if row["rep_id"] == rep_id), None)


async def dead_letter_for(client: httpx.AsyncClient, event_id: str) -> dict[str, Any] | None:
    r = await client.get("/v1/forecast/dead-letters", params={"limit": 1000})
    return next((i for i in r.json()["items"] if i["event_id"] == event_id), None)


async def test_a_rep_who_moves_team_does_not_restate_the_past(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, east, west = f"rep-{tag}", f"east-{tag}", f"west-{tag}"
    await post(
        client,
        event(
            TEAM_V2,
            {
                "team_id": east,
                "name": "East",
                "manager_id": f"m1-{tag}",
                "manager_name": "Mia",
                "region": "EMEA",
                "effective_from": "2026-01-01",
            },
            time="2026-01-01T00:00:00Z",
        ),
        event(
            TEAM_V1,
            {"team_id": west, "name": "West", "manager_id": f"m2-{tag}"},
            time="2026-01-01T00:00:00Z",
        ),
        event(
            REP,
            {"rep_id": rep, "name": "Ana", "team_id": east, "effective_from": "2026-01-01"},
            time="2026-01-01T00:00:00Z",
        ),
    )

    async def in_east() -> dict[str, Any] | None:
        row = await rep_on(client, rep, "2026-02-01")
        return row if row and row["team_name"] == "East" else None

    before = await eventually(in_east)
    assert before == {
        "rep_id": rep,
        "rep_name": "Ana",
        "team_id": east,
        "team_name": "East",
        "manager_id": f"m1-{tag}",
        "manager_name": "Mia",
        "region": "EMEA",
        "active": True,
        "valid_from": "2026-01-01",
        "valid_to": None,
    }
    assert await rep_on(client, rep, "2025-12-31") is None, "nothing before the first date"

    move = event(
        REP,
        {"rep_id": rep, "name": "Ana", "team_id": west, "effective_from": "2026-06-01"},
        time="2026-05-20T00:00:00Z",
    )
    await post(client, move)

    async def moved() -> dict[str, Any] | None:
        row = await rep_on(client, rep, "2026-07-01")
        return row if row and row["team_id"] == west else None

    after = await eventually(moved)
    assert (after["team_name"], after["manager_id"], after["region"]) == (
        "West",
        f"m2-{tag}",
        None,
    )
    past = await rep_on(client, rep, "2026-02-01")
    assert past == {**before, "valid_to": "2026-06-01"}, "the past keeps its team"

    history = (await client.get(f"/v1/forecast/reps/{rep}/history")).json()
    assert [(v["team_id"], v["valid_from"], v["valid_to"]) for v in history["versions"]] == [
        (east, "2026-01-01", "2026-06-01"),
        (west, "2026-06-01", None),
    ]
    text = (await client.get(f"/v1/forecast/reps/{rep}/history", params={"format": "csv"})).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["team_id"] for r in rows] == [east, west]
    assert list(rows[0]) == [
        "rep_id",
        "rep_name",
        "team_id",
        "team_name",
        "manager_id",
        "manager_name",
        "region",
        "active",
        "valid_from",
        "valid_to",
    ]
    missing = await client.get(f"/v1/forecast/reps/nobody-{tag}/history")
    assert missing.status_code == 404
    bad = await client.get("/v1/forecast/hierarchy", params={"as_of": "someday"})
    assert bad.status_code == 422
    assert "as_of" in bad.text


async def test_a_team_parent_cycle_is_dead_lettered_with_its_path(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    t1, t2 = f"t1-{tag}", f"t2-{tag}"
    await post(
        client,
        event(
            TEAM_V1,
            {"team_id": t1, "name": "One", "parent_team_id": t2},
            time="2026-01-01T00:00:00Z",
        ),
        event(TEAM_V1, {"team_id": t2, "name": "Two"}, time="2026-01-01T00:00:00Z"),
        event(REP, {"rep_id": f"r-{tag}", "name": "R", "team_id": t2}, time="2026-01-01T00:00:00Z"),
    )

    async def t2_known() -> bool:
        row = await rep_on(client, f"r-{tag}", "2026-01-02")
        return row is not None and row["team_name"] == "Two"

    await eventually(t2_known)
    closing = event(
        TEAM_V1,
        {"team_id": t2, "name": "Two", "parent_team_id": t1, "effective_from": "2026-03-01"},
        time="2026-02-01T00:00:00Z",
    )
    await post(client, closing)

    async def letter() -> dict[str, Any] | None:
        return await dead_letter_for(client, closing["id"])

    found = await eventually(letter)
    assert f"team {t2} -> {t1} -> {t2}" in found["reason"]
    assert "as of 2026-03-01" in found["reason"]
    row = await rep_on(client, f"r-{tag}", "2026-04-01")
    assert row is not None
    assert row["team_name"] == "Two", "the refused event changed nothing"
    replayed = await client.post(f"/v1/forecast/dead-letters/{found['id']}/replay")
    assert replayed.status_code == 422, replayed.text
    assert f"team {t2} -> {t1} -> {t2}" in replayed.json()["detail"]
    await post(
        client,
        event(TEAM_V1, {"team_id": t1, "name": "One"}, time="2026-01-02T00:00:00Z"),
    )

    async def fixed() -> bool:
        again = await client.post(f"/v1/forecast/dead-letters/{found['id']}/replay")
        return again.status_code == 200

    await eventually(fixed)


async def test_quotas_are_listed_and_invoices_are_ignored_not_dead_lettered(
    client: httpx.AsyncClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, team = f"qrep-{tag}", f"qteam-{tag}"

    def quota(quota_id: str, amount: str, time: str, **owner: str) -> dict[str, Any]:
        data = {
            "quota_id": quota_id,
            **owner,
            "period_start": "2026-01-01",
            "period_end": "2026-03-31",
            "amount": amount,
            "currency": "USD",
        }
        return event(QUOTA, data, time=time)

    ignored_before = ignored()
    invoice = event(
        INVOICE,
        {
            "invoice_id": f"inv-{tag}",
            "amount": "10.00",
            "currency": "USD",
            "paid_at": "2026-02-01T00:00:00Z",
        },
        time="2026-02-01T00:00:00Z",
    )
    await post(
        client,
        quota(f"q1-{tag}", "250000.00", "2026-01-01T00:00:00Z", rep_id=rep),
        quota(f"q1-{tag}", "300000.00", "2026-01-15T00:00:00Z", rep_id=rep),
        quota(f"q2-{tag}", "900000.00", "2026-01-01T00:00:00Z", team_id=team),
        invoice,
    )

    async def listed() -> list[dict[str, Any]] | None:
        r = await client.get("/v1/forecast/quotas", params={"rep_id": rep})
        items: list[dict[str, Any]] = r.json()["items"]
        return items if items and items[0]["amount"] == "300000.00" else None

    assert await eventually(listed) == [
        {
            "quota_id": f"q1-{tag}",
            "rep_id": rep,
            "team_id": None,
            "period_start": "2026-01-01",
            "period_end": "2026-03-31",
            "amount": "300000.00",
            "currency": "USD",
        }
    ]
    r = await client.get(
        "/v1/forecast/quotas",
        params={"team_id": team, "period_start": "2026-02-01", "period_end": "2026-02-28"},
        headers={"Accept": "text/csv"},
    )
    assert r.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(r.text))) == [
        {
            "quota_id": f"q2-{tag}",
            "rep_id": "",
            "team_id": team,
            "period_start": "2026-01-01",
            "period_end": "2026-03-31",
            "amount": "900000.00",
            "currency": "USD",
        }
    ]
    later = await client.get(
        "/v1/forecast/quotas", params={"team_id": team, "period_start": "2026-04-01"}
    )
    assert later.json()["items"] == []

    async def invoice_read() -> bool:
        return ignored() > ignored_before

    await eventually(invoice_read)
    assert await dead_letter_for(client, invoice["id"]) is None


def ignored() -> float:
    sample = REGISTRY.get_sample_value(
        "salesops_consumer_events_total", {"group": "forecast_worker", "outcome": "ignored"}
    )
    return sample or 0.0


async def test_apply_is_order_independent_and_redelivery_is_a_no_op(database_url: str) -> None:
    """The handlers themselves, on the real database: every arrival order of the same
    events leaves the same intervals and quota, and a second delivery changes nothing."""
    engine = create_async_engine(database_url)
    tag = uuid.uuid4().hex[:8]
    try:
        outcomes = []
        for attempt in range(4):
            rep, team = f"ord-{tag}-{attempt}", f"ordteam-{tag}-{attempt}"
            events = [
                validate_event(e)
                for e in (
                    event(
                        REP,
                        {"rep_id": rep, "name": "A", "team_id": "x"},
                        time="2026-01-05T00:00:00Z",
                        id=f"a-{tag}-{attempt}",
                    ),
                    event(
                        REP,
                        {
                            "rep_id": rep,
                            "name": "A",
                            "team_id": "y",
                            "effective_from": "2026-03-01",
                        },
                        time="2026-02-01T00:00:00Z",
                        id=f"b-{tag}-{attempt}",
                    ),
                    event(
                        REP,
                        {
                            "rep_id": rep,
                            "name": "A",
                            "team_id": "z",
                            "effective_from": "2026-03-01",
                        },
                        time="2026-02-02T00:00:00Z",
                        id=f"c-{tag}-{attempt}",
                    ),
                    event(
                        REP,
                        {
                            "rep_id": rep,
                            "name": "A",
                            "team_id": "w",
                            "effective_from": "2026-02-01",
                        },
                        time="2026-04-01T00:00:00Z",
                        id=f"d-{tag}-{attempt}",
                    ),
                    event(
                        QUOTA,
                        {
                            "quota_id": team,
                            "team_id": team,
                            "period_start": "2026-01-01",
                            "period_end": "2026-01-31",
                            "amount": "1",
                            "currency": "USD",
                        },
                        time="2026-01-01T00:00:00Z",
                        id=f"e-{tag}-{attempt}",
                    ),
                    event(
                        QUOTA,
                        {
                            "quota_id": team,
                            "team_id": team,
                            "period_start": "2026-01-01",
                            "period_end": "2026-01-31",
                            "amount": "2",
                            "currency": "USD",
                        },
                        time="2026-01-02T00:00:00Z",
                        id=f"f-{tag}-{attempt}",
                    ),
                )
            ]
            random.Random(attempt).shuffle(events)
            reps = [e for e in events if e.envelope.type == REP]
            quotas = [e for e in events if e.envelope.type == QUOTA]
            async with engine.begin() as conn:
                for e in reps:
                    await apply_hierarchy(conn, [e])
                for e in quotas:
                    await set_quotas(conn, [e])
            async with engine.begin() as conn:
                again = await apply_hierarchy(conn, reps)
                assert (again.new, again.duplicates) == (0, len(reps))
                assert (await set_quotas(conn, quotas)).new == 0
            async with engine.connect() as conn:
                teams = {
                    day: (await hierarchy_repository.assignments_as_of(conn, at=day)).get(rep)
                    for day in (
                        date(2026, 1, 4),
                        date(2026, 1, 5),
                        date(2026, 2, 15),
                        date(2026, 3, 1),
                    )
                }
                totals = await quota_repository.quota_totals(
                    conn, by="team", start=date(2026, 1, 1), end=date(2026, 3, 31)
                )
            outcomes.append((teams, totals[(team, "USD")]))
        assert outcomes[0] == (
            {
                date(2026, 1, 4): None,
                date(2026, 1, 5): ("x", None, None),
                date(2026, 2, 15): ("w", None, None),
                date(2026, 3, 1): ("z", None, None),
            },
            Decimal(2),
        )
        assert all(o == outcomes[0] for o in outcomes)
    finally:
        await engine.dispose()


async def test_the_import_command_posts_the_hierarchy_through_the_api(
    client: httpx.AsyncClient, stack_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "hierarchy.csv"
    path.write_text(
        f"rep,team,manager,region\nAna {tag},North {tag},Mia {tag},EMEA\n", encoding="utf-8"
    )

    async def run() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "forecast",
            "hierarchy",
            "import",
            str(path),
            "--effective-from",
            "2026-01-01",
            "--base-url",
            stack_url,
            "--api-key",
            ADMIN_KEY,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode or 0, " ".join(out.decode().split())

    code, printed = await run()
    assert code == 0, printed
    assert "2 accepted, 0 duplicates, 0 rejected" in printed

    async def imported() -> dict[str, Any] | None:
        row = await rep_on(client, f"ana-{tag}", "2026-01-01")
        return row if row and row["region"] == "EMEA" else None

    row = await eventually(imported)
    assert (row["team_id"], row["manager_id"], row["manager_name"]) == (
        f"north-{tag}",
        f"mia-{tag}",
        f"Mia {tag}",
    )
    code, printed = await run()
    assert (code, "0 accepted, 2 duplicates" in printed) == (0, True), printed
