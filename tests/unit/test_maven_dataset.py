"""The Maven CRM sample as events: every quirk the README lists, on small files written
here, and the real files' event counts computed by the test from the CSV itself."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.datasets import maven
from services.datasets.load import dataset_events
from shared.events import validate_event
from tests.support.maven_expected import pipeline_rows

TEAMS = [
    ("Ana Lima", "Dustin Brinkmann", "Central"),
    ("Bo Chen", "Dustin Brinkmann", "Central"),
    ("Cy Dorn", "Rocco Neubert", "East"),
]
PRODUCTS = [("GTX Pro", "GTX", "4821"), ("MG Special", "MG", "55")]
HEADER = [
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
]


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def _dataset(tmp_path: Path, pipeline: list[tuple[str, ...]]) -> Path:
    _write(tmp_path / "sales_teams.csv", ["sales_agent", "manager", "regional_office"], TEAMS)
    _write(tmp_path / "products.csv", ["product", "series", "sales_price"], PRODUCTS)
    _write(tmp_path / "sales_pipeline.csv", HEADER, pipeline)
    return tmp_path


def _by_id(events: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(e["id"]): e for e in events}


def test_won_deal_is_created_engaging_at_list_price_then_won_at_close_value(
    tmp_path: Path,
) -> None:
    directory = _dataset(
        tmp_path,
        [("W1", "Ana Lima", "GTXPro", "Acme Corp", "Won", "2017-01-02", "2017-02-03", "4514")],
    )
    events = _by_id(dataset_events(directory))
    created, closed = events["deal:W1:created"], events["deal:W1:closed"]
    assert created["time"] == "2017-01-02T00:00:00Z"
    assert created["sequence"] == 0
    assert created["data"] == {
        "deal_id": "W1",
        "name": "GTX Pro for Acme Corp",
        "owner_id": "ana-lima",
        "account_id": "acme-corp",
        "amount": "4821",
        "currency": "USD",
        "stage": "Engaging",
        "pipeline": "default",
        "created_at": "2017-01-02T00:00:00Z",
    }
    assert closed["time"] == "2017-02-03T00:00:00Z"
    assert closed["sequence"] == 1
    assert closed["data"] == {
        "deal_id": "W1",
        "stage": "Won",
        "status": "won",
        "close_date": "2017-02-03",
        "amount": "4514",
    }


def test_lost_deal_keeps_its_list_price(tmp_path: Path) -> None:
    directory = _dataset(
        tmp_path, [("L1", "Bo Chen", "MG Special", "Acme", "Lost", "2017-01-02", "2017-03-01", "0")]
    )
    closed = _by_id(dataset_events(directory))["deal:L1:closed"]
    assert closed["data"] == {
        "deal_id": "L1",
        "stage": "Lost",
        "status": "lost",
        "close_date": "2017-03-01",
    }


def test_open_deal_without_account_has_no_account_and_no_close(tmp_path: Path) -> None:
    directory = _dataset(
        tmp_path, [("E1", "Cy Dorn", "MG Special", "", "Engaging", "2017-05-06", "", "")]
    )
    events = _by_id(dataset_events(directory))
    data = events["deal:E1:created"]["data"]
    assert isinstance(data, dict)
    assert "account_id" not in data
    assert "close_date" not in data
    assert data["name"] == "MG Special"
    assert data["stage"] == "Engaging"
    assert "deal:E1:closed" not in events


def test_prospecting_row_is_created_on_the_last_date_in_prospecting(tmp_path: Path) -> None:
    directory = _dataset(tmp_path, [("P1", "Ana Lima", "GTX Pro", "", "Prospecting", "", "", "")])
    created = _by_id(dataset_events(directory))["deal:P1:created"]
    assert created["time"] == "2017-12-31T00:00:00Z"
    data = created["data"]
    assert isinstance(data, dict)
    assert data["stage"] == "Prospecting"
    assert data["amount"] == "4821"
    assert data["created_at"] == "2017-12-31T00:00:00Z"
    assert "close_date" not in data


def test_reps_and_one_team_per_manager_take_effect_on_the_first_date(tmp_path: Path) -> None:
    directory = _dataset(tmp_path, [])
    events = dataset_events(directory)
    teams = [e["data"] for e in events if e["type"] == "com.salesops.team.upserted.v2"]
    reps = [e["data"] for e in events if e["type"] == "com.salesops.rep.upserted.v1"]
    assert [t["team_id"] for t in teams] == ["dustin-brinkmann", "rocco-neubert"]
    assert all(t["manager_id"] == t["team_id"] for t in teams)
    assert [(t["manager_name"], t["region"]) for t in teams] == [
        ("Dustin Brinkmann", "Central"),
        ("Rocco Neubert", "East"),
    ]
    assert {r["rep_id"]: r["team_id"] for r in reps} == {
        "ana-lima": "dustin-brinkmann",
        "bo-chen": "dustin-brinkmann",
        "cy-dorn": "rocco-neubert",
    }
    assert {e["data"]["effective_from"] for e in events} == {"2016-10-01"}
    assert {e["time"] for e in events} == {"2016-10-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        (("X1", "Ana Lima", "GTX Ultra", "", "Engaging", "2017-01-01", "", ""), "GTX Ultra"),
        (("X2", "Nobody", "GTX Pro", "", "Engaging", "2017-01-01", "", ""), "Nobody"),
        (("X3", "Ana Lima", "GTX Pro", "", "Stalled", "2017-01-01", "", ""), "Stalled"),
        (("X4", "Ana Lima", "GTX Pro", "A", "Won", "2017-01-01", "2017-02-01", ""), "close_value"),
        (("X5", "Ana Lima", "GTX Pro", "A", "Lost", "2017-01-01", "", "0"), "close_date"),
    ],
)
def test_rows_without_a_documented_treatment_stop_the_load(
    tmp_path: Path, row: tuple[str, ...], complaint: str
) -> None:
    directory = _dataset(tmp_path, [row])
    with pytest.raises(maven.DatasetError, match=complaint) as info:
        dataset_events(directory)
    assert row[0] in str(info.value)


def test_the_real_files_give_one_event_per_rep_team_deal_and_close(dataset_dir: Path) -> None:
    rows = pipeline_rows(dataset_dir)
    with (dataset_dir / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        teams = list(csv.DictReader(f))
    events = dataset_events(dataset_dir)
    counts = Counter(e["type"] for e in events)
    assert counts == {
        "com.salesops.team.upserted.v2": len({t["manager"] for t in teams}),
        "com.salesops.rep.upserted.v1": len(teams),
        "com.salesops.deal.created.v1": len(rows),
        "com.salesops.deal.updated.v1": sum(r.stage in ("Won", "Lost") for r in rows),
    }
    assert len({(e["source"], e["id"]) for e in events}) == len(events)
    for event in events:
        validate_event(event)
    gtx_pro = [
        e for e in events if e["type"].endswith("created.v1") and "GTX Pro" in e["data"]["name"]
    ]
    assert len(gtx_pro) == sum(r.product == "GTXPro" for r in rows)
    assert {e["data"]["amount"] for e in gtx_pro} == {"4821"}
    no_account = [
        e for e in events if e["type"].endswith("created.v1") and "account_id" not in e["data"]
    ]
    assert len(no_account) == sum(not r.account for r in rows)
    won = sum(
        (Decimal(e["data"].get("amount", 0)) for e in events if e["data"].get("status") == "won"),
        Decimal(0),
    )
    assert won == sum((r.close_value or 0 for r in rows if r.stage == "Won"), Decimal(0))


def test_a_second_read_gives_the_same_events(dataset_dir: Path) -> None:
    assert dataset_events(dataset_dir) == dataset_events(dataset_dir)


def test_the_cli_refuses_a_dataset_it_cannot_place_before_sending_anything(tmp_path: Path) -> None:
    directory = _dataset(
        tmp_path, [("X1", "Ana Lima", "GTX Ultra", "", "Engaging", "2017-01-01", "", "")]
    )
    result = CliRunner().invoke(
        app,
        ["dataset", "load", str(directory), "--base-url", "http://127.0.0.1:9", "--api-key", "k"],
    )
    assert result.exit_code == 1
    assert "GTX Ultra" in result.output


def test_the_real_files_with_history_are_valid_and_reproducible(dataset_dir: Path) -> None:
    plain = dataset_events(dataset_dir)
    events = dataset_events(dataset_dir, history_seed=3)
    assert events == dataset_events(dataset_dir, history_seed=3)
    assert events != dataset_events(dataset_dir, history_seed=4)
    assert len({(e["source"], e["id"]) for e in events}) == len(events)
    ids = {e["id"] for e in events}
    assert ids >= {e["id"] for e in plain}, "history adds to the plain load, never replaces it"
    assert len(events) > len(plain)
    for event in events:
        validate_event(event)
