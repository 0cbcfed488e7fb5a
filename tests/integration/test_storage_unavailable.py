"""A database that is away answers 503 with Retry-After on every route, never a 500.

The stack runs against a real broker and a PostgreSQL address where nothing listens (a
server that is down), so every read and write meets a refused connection.
"""

from __future__ import annotations

import httpx
import pytest

from services.cli import compose_all
from shared.embedded import free_port
from tests.conftest import ADMIN_KEY, make_settings
from tests.support.infra import serve_in_loop

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/deals", None),
        ("GET", "/v1/deals/D-1/history", None),
        ("GET", "/v1/sources", None),
        ("GET", "/v1/events/unpublishable", None),
        ("POST", "/v1/dlq/replay", {}),
    ],
)
async def test_an_absent_database_is_a_503_not_a_500(
    kafka_bootstrap: str, method: str, path: str, body: object
) -> None:
    down = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/gone"
    settings = make_settings(down, kafka_bootstrap)
    async with (
        serve_in_loop(compose_all(settings)) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as client,
    ):
        response = await client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
