"""A won deal becomes ledger lines through the real stack: plan and assignment through the
comp API, deal events through POST /v1/events, lines read back from GET /v1/comp/ledger.
Redelivered events post nothing; an un-win inside the clawback window posts a clawback, and
ends a capitalised multi-year contract (written off in the month of the end)."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.comp_engine.calc.trace_check import recompute
from services.comp_engine.ledger.schemas import LINE_CSV_COLUMNS
from tests.support.events import CREATED, UPDATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PLAN = {
    "name": "AE flat",
    "currency": "USD",
    "period": "quarter",
    "target_variable": "10000",
    "components": [
        {
            "id": "new-business",
            "rate_table": {
                "basis": "period_amount",
                "mode": "marginal",
                "tiers": [
                    {"from": "0", "to": "50000", "rate": "10"},
                    {"from": "50000", "rate": "15"},
                ],
            },
        }
    ],
    "clawback": {"window_days": 90, "triggers": ["lost"]},
}


async def lines(client: httpx.AsyncClient, rep: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/comp/ledger", params={"rep_id": rep})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_won_deal_posts_commission_then_a_clawback(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rep, plan_id = f"rep-{tag}", f"ae-{tag}"
    r = await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2026-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2026-01-01"}
    )
    assert r.status_code == 201, r.text

    first, second = f"d1-{tag}", f"d2-{tag}"
    won = [
        event(
            CREATED,
            {
                "deal_id": first,
                "owner_id": rep,
                "amount": "40000",
                "currency": "USD",
                "stage": "closedwon",
                "close_date": "2026-02-10",
            },
            time="2026-02-10T12:00:00Z",
        ),
        event(
            CREATED,
            {
                "deal_id": second,
                "owner_id": rep,
                "amount": "20000",
                "currency": "USD",
                "stage": "closedwon",
                "close_date": "2026-02-20",
            },
            time="2026-02-20T12:00:00Z",
        ),
    ]
    assert (await client.post("/v1/events", json=won)).status_code == 202

    async def two_lines() -> list[dict[str, Any]] | None:
        found = await lines(client, rep)
        return found if len(found) == 2 else None

    posted = await eventually(two_lines)
    by_deal = {line["deal_id"]: line for line in posted}
    assert Decimal(by_deal[first]["amount"]) == Decimal("4000.00")
    # The second deal crosses 50,000: 10,000 at 10% and 10,000 at 15%.
    assert Decimal(by_deal[second]["amount"]) == Decimal("2500.00")
    assert {line["period"] for line in posted} == {"2026-Q1"}
    for line in posted:
        assert recompute(line["trace"]) == Decimal(line["amount"])

    assert (await client.post("/v1/events", json=won)).status_code == 202
    lost = event(UPDATED, {"deal_id": first, "stage": "closedlost"}, time="2026-03-01T12:00:00Z")
    assert (await client.post("/v1/events", json=[lost])).status_code == 202

    async def clawed() -> list[dict[str, Any]] | None:
        found = await lines(client, rep)
        return found if any(line["kind"] == "clawback" for line in found) else None

    after = await eventually(clawed)
    assert len(after) == 3, after
    (claw,) = [line for line in after if line["kind"] == "clawback"]
    assert (claw["deal_id"], Decimal(claw["amount"])) == (first, Decimal("-4000.00"))
    assert claw["trace"]["clawback"]["trigger"] == "lost"

    r = await client.get("/v1/comp/ledger", params={"rep_id": rep, "format": "csv"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == LINE_CSV_COLUMNS
    assert len(rows) == 4
    r = await client.get(
        "/v1/comp/ledger", params={"rep_id": rep, "after_id": min(x["id"] for x in after)}
    )
    assert len(r.json()["items"]) == 2


async def test_plan_that_does_not_validate_names_each_error(client: httpx.AsyncClient) -> None:
    bad = {
        **PLAN,
        "period": "fortnight",
        "components": [
            {
                "id": "c",
                "rate_table": {
                    "tiers": [{"from": "0", "to": "10", "rate": "5"}, {"from": "20", "rate": "7"}]
                },
            }
        ],
    }
    r = await client.post(
        "/v1/comp/plans/bad/versions", json={"effective_from": "0001-01-01", "document": bad}
    )
    assert r.status_code == 422
    errors = {e["location"]: e["message"] for e in r.json()["errors"]}
    assert set(errors) == {
        "body.effective_from",
        "body.document.period",
        "body.document.components.0.rate_table",
    }
    assert "contiguous" in errors["body.document.components.0.rate_table"]


PLAN_YAML = """\
effective_from: 2026-01-01
document:
  name: AE flat
  currency: USD
  period: quarter
  target_variable: 10000
  components:
    - id: new-business
      rate_table:
        basis: period_amount
        mode: marginal
        tiers:
          - {from: 0, to: 50000, rate: 10}
          - {from: 50000, rate: 15}
  clawback:
    window_days: 90
    triggers: [lost]
"""
YAML = {"Content-Type": "application/yaml"}


async def test_a_yaml_plan_is_the_same_plan_as_its_json(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    from_yaml, from_json = f"yaml-{tag}", f"json-{tag}"
    r = await client.post(f"/v1/comp/plans/{from_yaml}/versions", content=PLAN_YAML, headers=YAML)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = await client.post(
        f"/v1/comp/plans/{from_json}/versions",
        json={"effective_from": "2026-01-01", "document": PLAN},
    )
    assert r.status_code == 201, r.text

    def stored(plan: dict[str, Any]) -> tuple[Any, ...]:
        (version,) = plan["versions"]
        return version["version"], version["effective_from"], version["document"]

    yaml_plan = (await client.get(f"/v1/comp/plans/{from_yaml}")).json()
    json_plan = (await client.get(f"/v1/comp/plans/{from_json}")).json()
    assert stored(yaml_plan) == stored(json_plan)


async def test_a_yaml_plan_that_does_not_validate_names_each_error(
    client: httpx.AsyncClient,
) -> None:
    bad = (
        PLAN_YAML.replace("effective_from: 2026-01-01", "effective_from: 2026-13-01")
        .replace("period: quarter", "period: fortnight")
        .replace("{from: 50000, rate: 15}", "{from: 60000, rate: 15}")
    )
    r = await client.post("/v1/comp/plans/bad-yaml/versions", content=bad, headers=YAML)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = {e["location"]: e["message"] for e in r.json()["errors"]}
    assert set(errors) == {
        "body.effective_from",
        "body.document.period",
        "body.document.components.0.rate_table",
    }
    assert "contiguous" in errors["body.document.components.0.rate_table"]
    assert (await client.get("/v1/comp/plans/bad-yaml")).status_code == 404


async def test_yaml_that_does_not_parse_answers_where(client: httpx.AsyncClient) -> None:
    broken = PLAN_YAML.replace("currency: USD", "currency: [USD")
    r = await client.post(
        "/v1/comp/plans/broken-yaml/versions",
        content=broken,
        headers={"Content-Type": "text/yaml; charset=utf-8"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    where = "expected ',' or ']', but got ':' at line 5, column 9"
    assert r.json()["errors"] == [{"location": "body", "message": where}]
    assert where in r.json()["detail"]


async def test_overlapping_assignment_is_a_conflict(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    plan_id, rep = f"p-{tag}", f"rep-{tag}"
    await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2026-01-01", "document": PLAN},
    )
    first = {"rep_id": rep, "plan_id": plan_id, "start": "2026-01-01", "end": "2026-07-01"}
    assert (await client.post("/v1/comp/assignments", json=first)).status_code == 201
    clash = {"rep_id": rep, "plan_id": plan_id, "start": "2026-06-01"}
    r = await client.post("/v1/comp/assignments", json=clash)
    assert r.status_code == 409
    assert "2026-01-01" in r.json()["detail"]
    after = {"rep_id": rep, "plan_id": plan_id, "start": "2026-07-01"}
    assert (await client.post("/v1/comp/assignments", json=after)).status_code == 201
    ancient = {"rep_id": f"{rep}-2", "plan_id": plan_id, "start": "0001-01-01"}
    r = await client.post("/v1/comp/assignments", json=ancient)
    assert r.status_code == 422
    assert "start" in r.text


async def test_plan_schema_is_published(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/comp/plan-schema")
    assert r.status_code == 200
    schema = r.json()
    assert "components" in schema["properties"]
    assert "RateTableIn" in schema["$defs"]


async def test_multi_year_contract_is_amortised(client: httpx.AsyncClient) -> None:
    """ASC 340-40: a 2,400 commission on a 24-month contract booked in February is expensed
    100 a month: 200 in the first quarter, 2,200 left; the same row as CSV for finance."""
    rep, deal = await won_on_a_two_year_contract(client)
    r = await client.get("/v1/comp/amortization", params={"period": "2026-Q1", "rep_id": rep})
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert (Decimal(row["capitalised"]), Decimal(row["expense"]), Decimal(row["balance"])) == (
        Decimal("2400.00"),
        Decimal("200.00"),
        Decimal("2200.00"),
    )
    assert r.json()["expense"] == {"USD": "200.00"}

    query = {"period": "2026-Q1", "rep_id": rep}
    as_csv = await client.get("/v1/comp/amortization", params={**query, "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    accepted = await client.get(
        "/v1/comp/amortization", params=query, headers={"Accept": "text/csv"}
    )
    assert accepted.text == as_csv.text
    (csv_row,) = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert csv_row == {
        "line_id": str(row["line_id"]),
        "rep_id": rep,
        "deal_id": deal,
        "kind": row["kind"],
        "currency": "USD",
        "capitalised": "2400.00",
        "first_month": row["first_month"],
        "term_months": "24",
        "expense": "200.00",
        "amortised_to_date": "200.00",
        "balance": "2200.00",
        "ended_on": "",
        "written_off": "0.00",
    }


async def test_a_multi_year_contract_lost_inside_the_window_is_written_off(
    client: httpx.AsyncClient,
) -> None:
    """ASC 340-40-35-3: the deal lost on 15 April ends its contract, so the asset is
    impaired to nil in April: 100 amortised plus the 2,100 left written off, nothing in May.
    The clawback line itself is expensed when posted, as before."""
    rep, deal = await won_on_a_two_year_contract(client)
    lost = event(UPDATED, {"deal_id": deal, "stage": "closedlost"}, time="2026-04-15T12:00:00Z")
    assert (await client.post("/v1/events", json=[lost])).status_code == 202

    async def clawed() -> list[dict[str, Any]] | None:
        found = await lines(client, rep)
        return found if any(line["kind"] == "clawback" for line in found) else None

    (claw,) = [line for line in await eventually(clawed) if line["kind"] == "clawback"]
    assert Decimal(claw["amount"]) == Decimal("-2400.00")

    query = {"period": "2026-04", "rep_id": rep}
    r = await client.get("/v1/comp/amortization", params=query)
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["deal_id"] == deal
    assert row["ended_on"] == "2026-04-15"
    assert tuple(Decimal(row[k]) for k in ("expense", "written_off", "balance")) == (
        Decimal("2200.00"),
        Decimal("2100.00"),
        Decimal("0.00"),
    )
    assert r.json()["expense"] == {"USD": "2200.00"}
    as_csv = await client.get("/v1/comp/amortization", params={**query, "format": "csv"})
    (csv_row,) = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert (csv_row["ended_on"], csv_row["written_off"]) == ("2026-04-15", "2100.00")

    march = await client.get("/v1/comp/amortization", params={"period": "2026-03", "rep_id": rep})
    (before,) = march.json()["rows"]
    assert (Decimal(before["expense"]), Decimal(before["written_off"])) == (
        Decimal("100.00"),
        Decimal(0),
    )
    may = await client.get("/v1/comp/amortization", params={"period": "2026-05", "rep_id": rep})
    assert may.status_code == 200, may.text
    assert may.json()["rows"] == []


async def test_a_reversed_clawback_leaves_the_contract_running(
    client: httpx.AsyncClient,
) -> None:
    """The plan's window shortened to 30 days after the loss on 15 April (64 days after the
    win): the clawback is reversed, its lines net to nil, so the contract has not ended and
    April and May each expense their 100."""
    rep, deal = await won_on_a_two_year_contract(client)
    lost = event(UPDATED, {"deal_id": deal, "stage": "closedlost"}, time="2026-04-15T12:00:00Z")
    assert (await client.post("/v1/events", json=[lost])).status_code == 202

    async def clawbacks(count: int) -> list[dict[str, Any]] | None:
        found = [line for line in await lines(client, rep) if line["kind"] == "clawback"]
        return found if len(found) == count else None

    await eventually(lambda: clawbacks(1))
    ended = await client.get("/v1/comp/amortization", params={"period": "2026-04", "rep_id": rep})
    assert ended.json()["rows"][0]["ended_on"] == "2026-04-15"

    shorter = {**flat_plan(), "clawback": {"window_days": 30, "triggers": ["lost"]}}
    r = await client.post(
        f"/v1/comp/plans/flat-{rep}/versions",
        json={"effective_from": "2026-01-01", "document": shorter},
    )
    assert r.status_code == 201, r.text
    both = await eventually(lambda: clawbacks(2))
    assert sum(Decimal(line["amount"]) for line in both) == 0

    for period in ("2026-04", "2026-05"):
        r = await client.get("/v1/comp/amortization", params={"period": period, "rep_id": rep})
        (row,) = r.json()["rows"]
        assert row["ended_on"] is None
        assert (Decimal(row["expense"]), Decimal(row["written_off"])) == (
            Decimal("100.00"),
            Decimal(0),
        )


def flat_plan() -> dict[str, Any]:
    """10% of each deal's amount, clawed back when lost inside 90 days."""
    return {
        **PLAN,
        "components": [
            {
                "id": "c",
                "rate_table": {"basis": "deal_amount", "tiers": [{"from": "0", "rate": "10"}]},
            }
        ],
    }


async def won_on_a_two_year_contract(client: httpx.AsyncClient) -> tuple[str, str]:
    """A rep on a flat 10% plan (clawback window 90 days on loss) and a 24,000 deal won on
    10 February on a 24-month contract: a 2,400 commission, capitalised. Returns rep and
    deal; the plan is `flat-<rep>`."""
    tag = uuid.uuid4().hex[:8]
    rep, deal = f"rep-{tag}", f"d-{tag}"
    plan_id = f"flat-{rep}"
    await client.post(
        f"/v1/comp/plans/{plan_id}/versions",
        json={"effective_from": "2026-01-01", "document": flat_plan()},
    )
    await client.post(
        "/v1/comp/assignments", json={"rep_id": rep, "plan_id": plan_id, "start": "2026-01-01"}
    )
    created = event(
        CREATED,
        {
            "deal_id": deal,
            "owner_id": rep,
            "amount": "24000",
            "currency": "USD",
            "stage": "closedwon",
            "close_date": "2026-02-10",
            "properties": {"contract_months": 24},
        },
        time="2026-02-10T12:00:00Z",
    )
    assert (await client.post("/v1/events", json=[created])).status_code == 202
    await eventually(lambda: lines_or_none(client, rep))
    return rep, deal


async def lines_or_none(client: httpx.AsyncClient, rep: str) -> list[dict[str, Any]] | None:
    return await lines(client, rep) or None
