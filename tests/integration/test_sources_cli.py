"""`salesops sources load` against the real database, then seen through the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _load(database_url: str, path: Path, **extra_env: str) -> tuple[int, str]:
    """Exit code and everything printed, with Rich's line wrapping undone."""
    env = {**os.environ, "SALESOPS_DATABASE_URL": database_url, **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "sources", "load", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


async def test_loading_the_example_file_creates_sources_without_exposing_secrets(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    example = (ROOT / "deploy" / "sources.example.yaml").read_text()
    path = tmp_path / "sources.yaml"
    path.write_text(
        example.replace("hubspot-main", "yaml-hubspot")
        .replace("48975575", "4242")
        .replace("salesforce-prod", "yaml-sf")
        .replace("00D5w000004ABCD", "00D5w000009YAML")
        .replace("pipedrive-eu", "yaml-pd")
        .replace('"123123"               # company_id', '"777"')
    )
    code, output = _load(database_url, path)
    assert code == 0, output
    assert "created source yaml-hubspot" in output
    _, again = _load(database_url, path)
    assert "updated source yaml-hubspot" in again

    listed = (await client.get("/v1/sources")).json()
    mine = {s["id"]: s for s in listed if s["id"].startswith("yaml-")}
    assert set(mine) == {"yaml-hubspot", "yaml-sf", "yaml-pd"}
    assert mine["yaml-hubspot"]["mapping"]["stages"]["closedwon"]["stage"] == "won"
    assert mine["yaml-hubspot"]["secrets_set"] == ["current", "api_token"]
    assert "<app client secret>" not in str(listed)


def test_an_invalid_file_is_refused_with_the_reason(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  - id: Bad Id\n    kind: zoho\n    account_id: x\n")
    code, output = _load(database_url, path)
    assert code == 1
    assert "not a valid sources file" in output
    assert "kind" in output


def test_a_file_pointing_a_re_sync_off_its_crm_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "outbound.yaml"
    path.write_text(
        "sources:\n  - id: cli-outbound\n    kind: hubspot\n    account_id: '9'\n"
        "    api_base_url: https://metadata.evil.example\n"
    )
    code, output = _load(database_url, path)
    assert code == 1
    assert "'metadata.evil.example' is not a hubspot host" in output


def test_a_file_whose_allowed_host_resolves_inward_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    """The DNS check PUT /v1/sources runs: an allowed name is still judged by where it
    resolves to."""
    path = tmp_path / "inward.yaml"
    path.write_text(
        "sources:\n  - id: cli-inward\n    kind: hubspot\n    account_id: '10'\n"
        "    api_base_url: https://localhost:8443\n"
    )
    code, output = _load(database_url, path, SALESOPS_OUTBOUND_ALLOWED_HOSTS='["localhost"]')
    assert code == 1
    assert "'localhost' resolves to" in output
    assert "inside the network" in output
