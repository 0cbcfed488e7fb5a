"""Session-wide real infrastructure: one migrated database and one broker per test run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from services.cli import compose_all, run_migrations
from shared.embedded import scratch_database
from shared.settings import Settings
from tests.support.dataset import load_dataset
from tests.support.infra import serve_in_loop, test_broker, test_database
from tests.support.waiting import eventually

ADMIN_KEY = "test-admin-key"
WRITER_KEY = "test-writer-key"
READER_KEY = "test-reader-key"
BOUND_KEY = "test-bound-key"
FORECASTER_KEY = "test-forecaster-key"
COMP_ADMIN_KEY = "test-comp-admin-key"
COMP_READER_KEY = "test-comp-reader-key"
REP_KEY = "test-rep-key"
MANAGER_KEY = "test-manager-key"
KEY_REP = "rep-keyholder"
KEY_MANAGER = "manager-keyholder"
API_KEYS: dict[str, object] = {
    ADMIN_KEY: ["admin"],
    WRITER_KEY: ["events:write"],
    READER_KEY: ["forecast:read", "events:read"],
    FORECASTER_KEY: ["forecast:write", "forecast:read"],
    COMP_ADMIN_KEY: ["comp:admin", "comp:read"],
    COMP_READER_KEY: ["comp:read"],
    REP_KEY: {"scopes": ["comp:read"], "rep_id": KEY_REP},
    MANAGER_KEY: {"scopes": ["comp:read"], "manager_id": KEY_MANAGER},
    BOUND_KEY: {"scopes": ["events:write", "events:read"], "sources": ["app://bound/*"]},
}

SHARED_DIR = Path(
    os.environ.get("SALESOPS_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
DATASET_DIR = SHARED_DIR / "datasets" / "crm_sales_opportunities"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fuzz tests last: the random sources and events they store must not meet the
    assumptions of tests that share the stack. Under pytest-xdist (`--dist loadfile`, as
    `bin/test` runs it) each process has its own stack and takes whole files in this
    order, so the fuzz file is the last its process runs."""
    items.sort(key=lambda item: item.get_closest_marker("fuzz") is not None)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with test_database() as url:
        run_migrations(url)
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with test_broker() as bootstrap:
        yield bootstrap


def make_settings(database_url: str, kafka_bootstrap: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "api_keys": API_KEYS,
        "broker_check_seconds": 1.0,
        "relay_poll_seconds": 0.2,
        "log_json": False,
        # The fake CRMs (tests/support/fake_crm.py) answer on 127.0.0.1 over http.
        "outbound_allow_loopback": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def quiet_database_url(database_url: str) -> Iterator[str]:
    """A migrated database of one module's own on the session's server, where no stack
    runs. For tests whose jobs the stack's own workers would take (a re-sync job), and for
    sync tests that drive the services' code with `asyncio.run`: while one runs, the
    session's event loop (and the stack served in it) stands still, so a transaction the
    stack had open when the loop stopped keeps its locks (the summary's catch-up lock, a
    deal's row) until the test ends, and a test that waits for one of them on the shared
    database waits for ever."""
    with scratch_database(database_url, prefix="salesops_quiet") as url:
        run_migrations(url)
        yield url


@pytest.fixture(scope="session")
async def stack_url(database_url: str, kafka_bootstrap: str) -> AsyncIterator[str]:
    """The whole stack, as `salesops dev` composes it, served over real HTTP."""
    async with serve_in_loop(compose_all(make_settings(database_url, kafka_bootstrap))) as url:
        yield url


@pytest.fixture
async def client(stack_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as c:
        yield c


@pytest.fixture
async def restore_forecast_config(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The forecast configuration is one document for the whole stack: a test that
    replaces it puts back what was there, and waits for the dead-letter replay that
    follows, so that the next test does not meet it under way."""
    before = (await client.get("/v1/forecast/config")).json()
    yield
    assert (await client.put("/v1/forecast/config", json=before)).status_code == 200

    async def replayed() -> bool:
        return not (await client.get("/v1/forecast/config/replay")).json()["pending"]

    await eventually(replayed)


@pytest.fixture
def dataset_dir() -> Path:
    return _require_dataset()


def _require_dataset() -> Path:
    if not (DATASET_DIR / "sales_pipeline.csv").exists():
        pytest.skip(
            f"the CRM dataset is not at {DATASET_DIR} (it lives in ../shared beside the project)"
        )
    return DATASET_DIR


@pytest.fixture(scope="session")
async def dataset_first_load(stack_url: str) -> tuple[int, str]:
    """The session stack's first `salesops dataset load` of the real dataset (exit code and
    output), run once whichever test needs the dataset comes first: that test then sees
    the counts of a first load, and the others a loaded dataset."""
    return await load_dataset(stack_url, _require_dataset(), ADMIN_KEY)
