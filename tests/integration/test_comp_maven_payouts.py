"""The Maven CRM sample loaded through the intake, with a sample plan: every rep's payout and
every manager's roll-up equal what this test computes from the CSV itself.

The sample plan pays each rep 5% of the quarter's won value up to 100,000 and 8% above
(marginal), and each manager 1% of the won value of the team's deals. Marginal tiers on a
quarter's cumulative amount make a quarter's total depend on its sum only, so the test's
own arithmetic is a few lines: per agent and quarter of the close date, the table at the
sum, rounded to the cent (the ledger rounds each series so its lines add up exactly to
that)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.db import create_engine
from tests.support.maven_expected import agent_id, pipeline_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

CENT = Decimal("0.01")
REP_PLAN = {
    "name": "Maven reps",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "0",
    "components": [
        {
            "id": "won",
            "rate_table": {
                "basis": "period_amount",
                "tiers": [
                    {"from": "0", "to": "100000", "rate": "5"},
                    {"from": "100000", "rate": "8"},
                ],
            },
        }
    ],
}
MANAGER_PLAN = {
    "name": "Maven managers",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "0",
    "components": [
        {
            "id": "override",
            "rate_table": {"basis": "deal_amount", "tiers": [{"from": "0", "rate": "1"}]},
        }
    ],
    "credit_rules": {"owner": {"quota": False, "payout": False}, "manager_rollup": {"levels": 1}},
}


def quarter(day: Any) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def rep_table(total: Decimal) -> Decimal:
    low = min(total, Decimal(100_000))
    return low * Decimal("0.05") + max(total - Decimal(100_000), Decimal(0)) * Decimal("0.08")


def expected_payouts(directory: Path) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    with (directory / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        manager_of = {agent_id(r["sales_agent"]): agent_id(r["manager"]) for r in csv.DictReader(f)}
    by_rep_quarter: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    by_manager_quarter_deal: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for row in pipeline_rows(directory):
        if row.stage != "Won":
            continue
        assert row.close_date is not None
        assert row.close_value is not None
        rep = agent_id(row.agent)
        by_rep_quarter[(rep, quarter(row.close_date))] += row.close_value
        by_manager_quarter_deal[(manager_of[rep], quarter(row.close_date))].append(row.close_value)
    reps: dict[str, Decimal] = defaultdict(Decimal)
    for (rep, _), total in by_rep_quarter.items():
        reps[rep] += rep_table(total).quantize(CENT, ROUND_HALF_UP)
    managers: dict[str, Decimal] = defaultdict(Decimal)
    for (manager, _), values in by_manager_quarter_deal.items():
        running = Decimal(0)
        for value in values:
            before = running
            running += value * Decimal("0.01")
            managers[manager] += running.quantize(CENT, ROUND_HALF_UP) - before.quantize(
                CENT, ROUND_HALF_UP
            )
    return dict(reps), dict(managers)


@pytest.mark.timeout(900)
async def test_maven_payouts_match_the_csv(
    client: httpx.AsyncClient,
    database_url: str,
    dataset_dir: Path,
    dataset_first_load: tuple[int, str],
) -> None:
    code, output = dataset_first_load
    assert code == 0, output
    reps, managers = expected_payouts(dataset_dir)
    for plan_id, document in (("maven-reps", REP_PLAN), ("maven-managers", MANAGER_PLAN)):
        r = await client.post(
            f"/v1/comp/plans/{plan_id}/versions",
            json={"effective_from": "2016-10-01", "document": document},
        )
        assert r.status_code == 201, r.text
    for rep_id, plan_id in [
        *((r, "maven-reps") for r in reps),
        *((m, "maven-managers") for m in managers),
    ]:
        r = await client.post(
            "/v1/comp/assignments",
            json={"rep_id": rep_id, "plan_id": plan_id, "start": "2016-10-01"},
        )
        assert r.status_code == 201, r.text

    everyone = sorted({*reps, *managers})
    engine = create_engine(database_url, application_name="salesops-maven-comp-test")

    async def recalculated() -> bool:
        async with engine.connect() as conn:
            dirty = await conn.scalar(
                text("SELECT count(*) FROM comp.dirty_reps WHERE rep_id = ANY(:r)"),
                {"r": everyone},
            )
            posted = await conn.scalar(
                text("SELECT count(DISTINCT rep_id) FROM comp.ledger_lines WHERE rep_id = ANY(:r)"),
                {"r": everyone},
            )
        return dirty == 0 and posted == len(everyone)

    try:
        await eventually(recalculated, within=300, interval=1)
    finally:
        await engine.dispose()
    got: dict[str, Decimal] = defaultdict(Decimal)
    for rep_id in everyone:
        r = await client.get(
            "/v1/comp/ledger", params={"rep_id": rep_id, "limit": 10000, "format": "csv"}
        )
        for row in csv.DictReader(io.StringIO(r.text)):
            got[rep_id] += Decimal(row["amount"])
    assert dict(got) == {**reps, **managers}
    assert len(managers) == 6
    assert all(v > 0 for v in managers.values())
