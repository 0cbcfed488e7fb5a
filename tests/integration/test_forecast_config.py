"""GET/PUT /v1/forecast/config against the real stack, and `salesops forecast config`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import READER_KEY, WRITER_KEY
from tests.support.cli import salesops
from tests.support.forecast_config import stage

# The configuration is one document for the whole stack: each test puts back what was there.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("restore_forecast_config")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "forecast.example.yaml"


async def test_a_stored_document_reads_back_as_it_was_stored(client: httpx.AsyncClient) -> None:
    document = {
        "fiscal_year_start_month": 2,
        "pipelines": [
            {
                "name": "new business",
                "stages": [
                    stage("Proposal", 20, probability="62.5", forecast_category="best_case"),
                    stage("Discovery", 10, required_fields=["amount", "properties.budget"]),
                    stage(
                        "Closed Won",
                        30,
                        probability="100",
                        forecast_category="closed",
                        status="won",
                    ),
                ],
            },
            {"name": "renewals", "stages": [stage("Renewing", 1, probability="90")]},
        ],
        "default_pipeline": "renewals",
    }
    put = await client.put("/v1/forecast/config", json=document)
    assert put.status_code == 200, put.text
    stored = put.json()
    assert [s["name"] for s in stored["pipelines"][0]["stages"]] == [
        "Discovery",
        "Proposal",
        "Closed Won",
    ]
    assert stored["pipelines"][0]["stages"][1]["probability"] == "62.5"
    assert stored["pipelines"][0]["stages"][0]["required_fields"] == ["amount", "properties.budget"]
    assert [p["name"] for p in stored["pipelines"]] == ["new business", "renewals"]
    assert (stored["fiscal_year_start_month"], stored["default_pipeline"]) == (2, "renewals")
    reader = {"Authorization": f"Bearer {READER_KEY}"}
    assert (await client.get("/v1/forecast/config", headers=reader)).json() == stored

    smaller = {"pipelines": [{"name": "only", "stages": [stage("One", 1)]}]}
    replaced = (await client.put("/v1/forecast/config", json=smaller)).json()
    assert replaced == {
        "fiscal_year_start_month": 1,
        "pipelines": [{"name": "only", "stages": [stage("One", 1)]}],
        "default_pipeline": "only",
    }
    assert (await client.get("/v1/forecast/config")).json() == replaced


async def test_the_empty_document_is_stored_and_read_as_no_pipelines(
    client: httpx.AsyncClient,
) -> None:
    put = await client.put("/v1/forecast/config", json={})
    assert put.json() == {"fiscal_year_start_month": 1, "pipelines": [], "default_pipeline": None}
    assert (await client.get("/v1/forecast/config")).json() == put.json()


async def test_concurrent_replacements_never_mix_their_stages(client: httpx.AsyncClient) -> None:
    documents = [
        {"pipelines": [{"name": f"p{n}", "stages": [stage(f"s{n}-{i}", i) for i in range(20)]}]}
        for n in range(4)
    ]
    answers = await asyncio.gather(*(client.put("/v1/forecast/config", json=d) for d in documents))
    assert [a.status_code for a in answers] == [200] * 4
    final = (await client.get("/v1/forecast/config")).json()
    assert final in [a.json() for a in answers]
    assert len(final["pipelines"]) == 1
    assert len(final["pipelines"][0]["stages"]) == 20


@pytest.mark.parametrize(
    ("document", "location", "message"),
    [
        (
            {"pipelines": [{"name": "p", "stages": [stage("Won", 1), stage("WON", 2)]}]},
            "body.pipelines.0.stages",
            "stage name 'Won' is repeated, at positions 0 and 1",
        ),
        (
            {"pipelines": [{"name": "p", "stages": [stage("Lost", 1, status="lost")]}]},
            "body.pipelines.0.stages.0",
            "stage 'Lost' is lost, so its forecast_category must be closed or omitted",
        ),
        (
            {"pipelines": [{"name": "p", "stages": [stage("a", 1, required_fields=["x"])]}]},
            "body.pipelines.0.stages.0.required_fields.0",
            "'x' is not a deal field",
        ),
        (
            {"pipelines": [{"name": "p", "stages": [stage("a", 1, probability="100.5")]}]},
            "body.pipelines.0.stages.0.probability",
            "less than or equal to 100",
        ),
        (
            {"pipelines": [{"name": "p", "stages": [stage("a", 1)]}], "default_pipeline": "q"},
            "body.default_pipeline",
            "'q' is not one of the pipelines ('p')",
        ),
        ({"fiscal_year_start_month": 13}, "body.fiscal_year_start_month", "less than or equal"),
    ],
)
async def test_a_bad_document_is_refused_with_where_and_why_and_nothing_changes(
    client: httpx.AsyncClient, document: dict[str, Any], location: str, message: str
) -> None:
    before = (await client.get("/v1/forecast/config")).json()
    answer = await client.put("/v1/forecast/config", json=document)
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["location"] == location
    assert message in error["message"]
    assert (await client.get("/v1/forecast/config")).json() == before


async def test_only_an_admin_key_replaces_the_configuration(stack_url: str) -> None:
    async with httpx.AsyncClient(base_url=stack_url, timeout=30) as anonymous:
        for key in (READER_KEY, WRITER_KEY):
            refused = await anonymous.put(
                "/v1/forecast/config", json={}, headers={"Authorization": f"Bearer {key}"}
            )
            assert refused.status_code == 403
        assert (await anonymous.put("/v1/forecast/config", json={})).status_code == 401
        assert (await anonymous.get("/v1/forecast/config")).status_code == 401
        writer = {"Authorization": f"Bearer {WRITER_KEY}"}
        assert (await anonymous.get("/v1/forecast/config", headers=writer)).status_code == 403


async def _salesops(stack_url: str, *args: str) -> tuple[int, str, str]:
    return await salesops(stack_url, "forecast", "config", *args)


async def test_the_cli_loads_the_example_file_and_shows_it_back(
    client: httpx.AsyncClient, stack_url: str
) -> None:
    code, _, output = await _salesops(stack_url, "load", str(EXAMPLE))
    assert code == 0, output
    assert "stored the forecast configuration: 1 pipelines, 4 stages" in output
    stored = (await client.get("/v1/forecast/config")).json()
    stages = {s["name"]: s for s in stored["pipelines"][0]["stages"]}
    assert stages["Engaging"]["probability"] == "50"
    assert stages["Engaging"]["required_fields"] == ["amount", "close_date"]
    assert stages["Lost"]["forecast_category"] == "omitted"

    code, shown, output = await _salesops(stack_url, "show")
    assert code == 0, output
    assert yaml.safe_load(shown) == stored


async def test_the_cli_reports_a_refused_file_and_exits_1(stack_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("pipelines:\n  - name: p\n    stages: []\n")
    code, _, output = await _salesops(stack_url, "load", str(path))
    assert code == 1
    assert "The configuration was refused" in output
    assert "body.pipelines.0.stages" in output

    path.write_text("- not a mapping\n")
    code, _, output = await _salesops(stack_url, "load", str(path))
    assert code == 1
    assert "expected a mapping" in output
