"""GET /v1/forecast/projection against the real stack: a hand-made history over two past
quarters with every rate and figure worked out here, the real dataset's 2017-Q3 projected
mid-quarter against a computation from the CSV, and bad input.

The hand-made test posts its deals in a currency of its own (a random code), so its
company row holds only its own deals."""

from __future__ import annotations

import csv
import random
import string
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml

from tests.support.events import CREATED, UPDATED, event, expected_deals
from tests.support.maven_expected import agent_id, pipeline_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "forecast.example.yaml"
REP = "com.salesops.rep.upserted.v1"
TEAM = "com.salesops.team.upserted.v2"
D = Decimal
RATE = D("0.0001")
CENT = D("0.01")


@pytest.fixture(autouse=True)
async def _example_config(client: httpx.AsyncClient, restore_forecast_config: None) -> None:
    """The example configuration for the test (`restore_forecast_config` puts back the
    previous one after it)."""
    put = await client.put("/v1/forecast/config", json=yaml.safe_load(EXAMPLE.read_text()))
    assert put.status_code == 200, put.text


async def post(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    r = await client.post("/v1/events", json=events)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == [], r.text


async def projection(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    r = await client.get("/v1/forecast/projection", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


class Scenario:
    """Deals posted as their creation and later changes, each at midnight UTC."""

    def __init__(self, tag: str, currency: str) -> None:
        self.tag, self.currency = tag, currency
        self.events: list[dict[str, Any]] = []

    def deal(
        self, name: str, owner: str, stage: str, amount: str, close: str | None, created: str
    ) -> str:
        deal_id = f"{name}-{self.tag}"
        data = {
            "deal_id": deal_id,
            "name": name,
            "owner_id": owner,
            "stage": stage,
            "amount": amount,
            "currency": self.currency,
            **({"close_date": close} if close else {}),
        }
        self.events.append(event(CREATED, data, time=f"{created}T00:00:00Z"))
        return deal_id

    def change(self, deal_id: str, day: str, **fields: str) -> None:
        data = {"deal_id": deal_id, **fields}
        self.events.append(event(UPDATED, data, time=f"{day}T00:00:00Z", sequence=1))

    def win(self, deal_id: str, day: str, amount: str) -> None:
        self.change(deal_id, day, stage="Won", status="won", close_date=day, amount=amount)


async def _applied(client: httpx.AsyncClient, want: dict[str, dict[str, Any]]) -> bool:
    for deal_id, values in want.items():
        r = await client.get(f"/v1/deals/{deal_id}")
        if r.status_code != 200 or (r.json()["stage"], r.json()["close_date"]) != (
            values["stage"],
            values.get("close_date"),
        ):
            return False
    return True


async def _hierarchy(client: httpx.AsyncClient, day: str, want: dict[str, str]) -> bool:
    r = await client.get("/v1/forecast/hierarchy", params={"as_of": day})
    teams = {row["rep_id"]: row["team_id"] for row in r.json()["items"]}
    return all(teams.get(rep) == team for rep, team in want.items())


def q(value: Decimal, places: Decimal = CENT) -> str:
    return str(value.quantize(places))


async def test_a_hand_made_history_projects_as_worked_out(client: httpx.AsyncClient) -> None:
    tag = uuid4().hex[:8]
    currency = "Q" + "".join(random.choices(string.ascii_uppercase, k=2))
    r1, r2, a, b = f"r1-{tag}", f"r2-{tag}", f"A-{tag}", f"B-{tag}"
    start = "2004-01-01"
    reference = [
        event(TEAM, {"team_id": t, "name": t, "manager_id": f"m{t}", "manager_name": t,
                     "region": f"x{t}", "effective_from": start},
              time=f"{start}T00:00:00Z")
        for t in (a, b)
    ] + [
        event(REP, {"rep_id": rep, "name": rep, "team_id": team, "effective_from": day},
              time=f"{day}T00:00:00Z")
        for rep, team, day in ((r1, a, start), (r2, b, start), (r2, a, "2005-07-01"))
    ]  # fmt: skip
    s = Scenario(tag, currency)
    # 2005-Q1, seen 46 days before its end (2005-02-14).
    s.win(s.deal("a1", r1, "Engaging", "1000", "2005-03-10", "2005-01-05"), "2005-03-10", "1200")
    s.change(s.deal("a2", r1, "Engaging", "500", "2005-03-20", "2005-01-10"), "2005-03-20",
             stage="Lost", status="lost")  # fmt: skip
    s.win(s.deal("a3", r2, "Prospecting", "400", "2005-03-01", "2005-01-20"), "2005-03-01", "400")
    s.win(s.deal("a4", r1, "Engaging", "300", "2005-06-15", "2005-02-01"), "2005-03-25", "300")
    s.win(s.deal("a5", r2, "Engaging", "250", "2005-03-30", "2005-03-01"), "2005-03-30", "250")
    s.win(s.deal("a6", r1, "Engaging", "100", "2005-02-01", "2005-01-02"), "2005-02-01", "100")
    # 2005-Q2, seen at 2005-05-16.
    s.win(s.deal("b1", r1, "Engaging", "2000", "2005-06-01", "2005-04-02"), "2005-06-01", "1000")
    pushed = s.deal("b2", r2, "Engaging", "600", "2005-06-10", "2005-04-03")
    s.change(pushed, "2005-06-05", close_date="2005-08-01")
    s.win(s.deal("b3", r1, "Engaging", "700", "2005-06-20", "2005-05-20"), "2005-06-20", "700")
    # 2005-Q3, projected as of 2005-08-16.
    c1 = s.deal("c1", r1, "Engaging", "1000", "2005-09-01", "2005-07-05")
    s.change(c1, "2005-07-06", forecast_category="commit")
    s.deal("c2", r2, "Prospecting", "800", "2005-09-15", "2005-07-10")
    s.deal("c3", r1, "Prospecting", "500", "2005-09-20", "2005-07-11")
    # An unknown stage is dead-lettered now: c4 is in a cohort no history has instead.
    s.deal("c4", r1, "Prospecting", "90", "2005-10-20", "2005-07-12")
    s.deal("c5", r1, "Engaging", "50", None, "2005-07-13")
    s.win(s.deal("c6", r1, "Engaging", "250", "2005-08-01", "2005-07-02"), "2005-08-01", "300")
    s.deal("c7", r1, "Engaging", "400", "2005-10-15", "2005-07-14")
    s.deal("c8", r1, "Engaging", "200", "2005-09-05", "2005-07-15")
    s.win(c1, "2005-08-20", "1000")
    await post(client, reference)
    await post(client, s.events)
    await eventually(lambda: _hierarchy(client, "2005-08-16", {r1: a, r2: a}))
    await eventually(lambda: _hierarchy(client, "2005-05-16", {r1: a, r2: b}))
    await eventually(lambda: _applied(client, expected_deals(s.events)), within=120)

    params = {"period": "2005-Q3", "as_of": "2005-08-16T00:00:00Z", "lookback": "2"}
    reps = await projection(client, group_by="rep", **params)
    assert reps["lookback_periods"] == ["2005-Q2", "2005-Q1"]
    assert (reps["elapsed_days"], reps["point"]) == ("46.00", "2005-08-16T00:00:00Z")
    rows = {(r["scope"], r["group"]): r for r in reps["rows"] if r["currency"] == currency}
    assert set(rows) == {("group", r1), ("group", r2), ("company", None)}

    # Rates pooled over Q1 and Q2, by (stage, due):
    #   r1 Engaging due in the period: a1 1000 + a2 500 (Q1) + b1 2000 (Q2) open, won
    #   1200 + 1000; r1 Engaging due later: a4 300, pulled in and won 300; a6 was won
    #   before the point and b3 created after it (new: Q2 700). r2: a3 Prospecting 400
    #   won 400, b2 Engaging 600 pushed out, a5 created after Q1's point (new 250).
    r1_engaging = (D(2200) / D(3500)).quantize(RATE)
    company_engaging = (D(2200) / D(4100)).quantize(RATE)
    r1_pipeline = {
        ("Engaging", "in_period"): (D(1200), r1_engaging, "own"),  # c1 + c8
        ("Engaging", "later"): (D(400), D(1), "own"),  # c7
        ("Engaging", "undated"): (D(50), None, None),  # c5: nobody's history
        ("Prospecting", "later"): (D(90), None, None),  # c4: nobody's history
        ("Prospecting", "in_period"): (D(500), D(1), "company"),  # c3: r2's rate
    }
    got = {(x["stage"], x["due"]): x for x in rows[("group", r1)]["rates"]}
    assert set(got) == set(r1_pipeline)
    for key, (amount, rate, source) in r1_pipeline.items():
        want_rate = None if rate is None else q(rate, RATE)
        assert (got[key]["open_amount"], got[key]["rate"], got[key]["rate_source"]) == (
            str(amount),
            want_rate,
            source,
        ), key
    from_pipeline = (D(1200) * r1_engaging).quantize(CENT) + D(400) + D(500)
    projected = D(300) + from_pipeline + D(350)
    r1_row = rows[("group", r1)]
    assert (r1_row["closed_won"], r1_row["from_pipeline"], r1_row["expected_new"]) == (
        "300", q(from_pipeline), "350.00",
    )  # fmt: skip
    assert (r1_row["unprojected"], r1_row["projected"], r1_row["open_pipeline"]) == (
        "140", q(projected), "2240",
    )  # fmt: skip
    assert (r1_row["bottom_up_commit"], r1_row["bottom_up_best_case"]) == ("1300", "1500")
    assert (r1_row["gap"], r1_row["gap_best_case"]) == (
        q(projected - 1300),
        q(projected - 1500),
    )
    r2_row = rows[("group", r2)]
    assert (r2_row["from_pipeline"], r2_row["expected_new"], r2_row["projected"]) == (
        "800.00", "125.00", "925.00",
    )  # fmt: skip
    assert (r2_row["bottom_up_commit"], r2_row["gap"]) == ("0", "925.00")

    company = rows[("company", None)]
    company_from = (D(1800) * company_engaging).quantize(CENT) + D(400) + D(1300)
    assert (company["from_pipeline"], company["expected_new"], company["unprojected"]) == (
        q(company_from), "475.00", "140",
    )  # fmt: skip
    assert company["projected"] == q(D(300) + company_from + D(475))
    assert {x["rate_source"] for x in company["rates"] if x["rate"]} == {"own"}

    teams = await projection(client, group_by="team", **params)
    by_team = {r["group"]: r for r in teams["rows"] if r["currency"] == currency}
    # r2 joined A on 2005-07-01: A has r2's pipeline now but not r2's past, which stays B's.
    team_a = {(x["stage"], x["due"]): x for x in by_team[a]["rates"]}
    assert team_a[("Prospecting", "in_period")]["rate_source"] == "company"
    assert team_a[("Engaging", "in_period")]["open_amount"] == "1800"
    assert team_a[("Engaging", "in_period")]["rate"] == q(r1_engaging, RATE)
    assert by_team[a]["expected_new"] == "350.00"
    assert (by_team[b]["open_pipeline"], by_team[b]["projected"]) == ("0", "125.00")

    csv_params = {**params, "group_by": "rep", "format": "csv"}
    text = (await client.get("/v1/forecast/projection", params=csv_params)).text
    table = {r["group"]: r for r in csv.DictReader(text.splitlines()) if r["currency"] == currency}
    assert "rates" not in table[r1]
    assert (table[r1]["scope"], table[r1]["projected"]) == ("group", q(projected))


def _maven_expected(directory: Path) -> dict[str | None, dict[str, Decimal]]:
    """2017-Q3 as of 2017-08-16 with 2017-Q2 and 2017-Q1 seen 46 days before their end, per
    manager and for the company (None), from the CSV: an open deal is one engaged by the
    instant and not closed by it (its close at close_date midnight), valued at its
    product's list price; every open deal is undated Engaging, one cohort."""
    with (directory / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        managers = {r["sales_agent"]: agent_id(r["manager"]) for r in csv.DictReader(f)}
    with (directory / "products.csv").open(newline="", encoding="utf-8") as f:
        prices = {r["product"]: D(r["sales_price"]) for r in csv.DictReader(f)}
    prices["GTXPro"] = prices["GTX Pro"]
    rows = [r for r in pipeline_rows(directory) if r.stage != "Prospecting"]
    past = ((date(2017, 4, 1), date(2017, 7, 1), date(2017, 5, 16)),
            (date(2017, 1, 1), date(2017, 4, 1), date(2017, 2, 14)))  # fmt: skip
    sums: dict[str | None, dict[str, Decimal]] = defaultdict(lambda: defaultdict(D))
    for row in rows:
        assert row.engage_date is not None
        for who in (managers[row.agent], None):
            books = sums[who]
            won = row.stage == "Won"
            for start, end, at in past:
                in_period = won and row.close_date is not None and start <= row.close_date < end
                if row.engage_date <= at and (row.close_date is None or row.close_date > at):
                    books["open"] += prices[row.product]
                    books["won"] += row.close_value if in_period and row.close_value else D(0)
                elif row.engage_date > at and in_period and row.close_value:
                    books["new"] += row.close_value
            now = date(2017, 8, 16)
            if row.engage_date <= now and (row.close_date is None or row.close_date > now):
                books["now"] += prices[row.product]
            if won and row.close_date and date(2017, 7, 1) <= row.close_date <= now:
                assert row.close_value is not None
                books["closed"] += row.close_value
    out = {}
    for who, books in sums.items():
        rate = (books["won"] / books["open"]).quantize(RATE)
        from_pipeline = (books["now"] * rate).quantize(CENT)
        new = (books["new"] / 2).quantize(CENT)
        out[who] = {
            "closed_won": books["closed"],
            "from_pipeline": from_pipeline,
            "expected_new": new,
            "projected": books["closed"] + from_pipeline + new,
        }
    return out


@pytest.mark.timeout(900)
async def test_the_real_dataset_projected_mid_quarter(
    client: httpx.AsyncClient, dataset_dir: Path, dataset_first_load: tuple[int, str]
) -> None:
    code, output = dataset_first_load
    assert code == 0, output
    want = _maven_expected(dataset_dir)
    names = ("closed_won", "from_pipeline", "expected_new", "projected")

    async def agrees() -> dict[str | None, dict[str, Decimal]] | None:
        answer = await projection(
            client, period="2017-Q3", group_by="manager", as_of="2017-08-16T00:00:00Z", lookback="2"
        )
        got = {
            r["group"]: {n: D(r[n]) for n in names}
            for r in answer["rows"]
            if r["currency"] == "USD"
            and (r["scope"] == "company" or (r["group"] is not None and r["group"] in want))
        }
        return got if got == want else None

    got = await eventually(agrees, within=600, interval=3)
    assert got[None]["from_pipeline"] > 0, "the dataset's undated open deals are projected"
    assert got[None]["expected_new"] > 0


async def test_bad_input(client: httpx.AsyncClient) -> None:
    path = "/v1/forecast/projection"
    for params, location in (
        ({"period": "2026-Q5", "group_by": "rep"}, "query.period"),
        ({"period": "2026-Q4", "group_by": "rep", "as_of": "yesterday"}, "as_of"),
        ({"period": "2026-Q4", "group_by": "rep", "as_of": "2999-01-01T00:00:00Z"}, "query.as_of"),
        ({"period": "2026-Q4", "group_by": "rep", "lookback": "0"}, "lookback"),
        ({"period": "2026-Q4", "group_by": "rep", "lookback": "13"}, "lookback"),
        ({"period": "2026-Q4", "group_by": "boss"}, "group_by"),
    ):
        r = await client.get(path, params=params)
        assert r.status_code == 422, (params, r.text)
        assert location in r.text, (params, r.text)
    # Other tests post history as far back as 1950: a millennium earlier is before any.
    early = await projection(
        client, period="2026-Q4", group_by="team", as_of="1000-01-01T00:00:00Z"
    )
    assert early == {
        "period": {"label": "2026-Q4", "start": "2026-10-01", "end": "2027-01-01"},
        "group_by": "team",
        "as_of": "1000-01-01T00:00:00Z",
        "point": "1000-01-01T00:00:00Z",
        "elapsed_days": "0.00",
        "lookback_periods": [],
        "rows": [],
    }
