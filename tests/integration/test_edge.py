"""The API edge against the running stack: authentication before any body is read, the
body cap while streaming, and hostile values (NUL, overflowing datetimes, ids beyond
64 bits) answered with problems instead of 500s."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_KEY, READER_KEY
from tests.support.events import CREATED, event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
OVERFLOWING = "9999-12-31T23:59:59-05:00"
BEYOND_INT64 = 2**63


async def _head_only(stack_url: str, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send a request's head announcing a 50 MiB body, send no body, and return what the
    server answers. A server that reads the body before answering never answers."""
    parts = urlsplit(stack_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in {"Content-Length": str(50 * MiB), **headers}.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/dlq/replay"),
        ("PUT", "/v1/sources/edge-test"),
        ("POST", "/v1/webhook-requests/replay"),
        ("POST", "/v1/events"),
    ],
)
async def test_refused_before_the_body_is_read(stack_url: str, method: str, path: str) -> None:
    missing = await _head_only(stack_url, method, path, {})
    assert missing.startswith(b"HTTP/1.1 401"), missing
    assert b"www-authenticate: Bearer" in missing.lower().replace(b"bearer", b"Bearer")
    assert b"application/problem+json" in missing
    wrong = await _head_only(stack_url, method, path, {"Authorization": "Bearer nope"})
    assert wrong.startswith(b"HTTP/1.1 401"), wrong
    reader = await _head_only(stack_url, method, path, {"Authorization": f"Bearer {READER_KEY}"})
    assert reader.startswith(b"HTTP/1.1 403"), reader


@pytest.mark.parametrize(
    "path",
    [
        "/v1/dlq/replay%0A",
        "/v1/dlq/replay%0D",
        "/v1/dlq/replay%0A%0A",
        "/v1/dlq/replay%0D%0A",
        "/v1/dlq/%72eplay",
        "/v1/dlq/replay/",
        "/v1/dlq/replay%2F",
        "//v1/dlq/replay",
        "/v1/dlq/./replay",
        "/v1/dlq/replay?x=%0A",
        "/v1/sources/edge-test%0A",
        "/v1/webhook-requests/replay%0A",
    ],
)
async def test_non_canonical_paths_are_refused_before_the_body_is_read(
    stack_url: str, path: str
) -> None:
    """Whatever route the router picks for a spelling of a path (a final `%0A` still
    matches `^...$`), its guard runs; a spelling that no route takes is a 404 or a
    redirect, also without reading the body."""
    anonymous = await _head_only(stack_url, "POST" if "sources" not in path else "PUT", path, {})
    assert anonymous.startswith((b"HTTP/1.1 401", b"HTTP/1.1 404", b"HTTP/1.1 307")), anonymous
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    oversized = await _head_only(stack_url, "POST" if "sources" not in path else "PUT", path, admin)
    assert oversized.startswith((b"HTTP/1.1 413", b"HTTP/1.1 404", b"HTTP/1.1 307")), oversized


async def test_declared_body_over_the_cap_is_refused_before_it_is_read(stack_url: str) -> None:
    answer = await _head_only(
        stack_url, "POST", "/v1/dlq/replay", {"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer


async def test_malformed_body_without_a_key_is_401_not_422(stack_url: str) -> None:
    async with httpx.AsyncClient(base_url=stack_url) as anonymous:
        answer = await anonymous.put(
            "/v1/sources/x", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["type"].endswith("/unauthorized")


async def test_chunked_body_over_the_cap_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ids": ['
        for _ in range(2 * 1024):
            yield b" " * 1024
        yield b"]}"

    answer = await client.post(
        "/v1/dlq/replay", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


async def test_body_under_the_cap_is_read(client: httpx.AsyncClient) -> None:
    padded = b'{"source_id": "no-such-source"' + b" " * (MiB - 100) + b"}"
    answer = await client.post(
        "/v1/dlq/replay", content=padded, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text


async def test_intake_keeps_its_own_larger_limit(client: httpx.AsyncClient) -> None:
    one = event(CREATED, {"deal_id": "edge-big-body"}, time="2026-01-01T00:00:00Z")
    padded = b"[" + orjson.dumps(one) + b" " * (2 * MiB) + b"]"
    answer = await client.post(
        "/v1/events", content=padded, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/deals/a%00b", {}),
        ("/v1/deals", {"owner_id": "a\x00b"}),
        ("/v1/dlq", {"source_id": "\x00"}),
        ("/v1/sources/a%00b", {}),
        ("/v1/events/app%3A%2F%2Fx/a%00b", {}),
        ("/v1/webhook-requests", {"source_id": "x\x00"}),
    ],
)
async def test_nul_in_path_or_query_is_422(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    answer = await client.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_nul_in_a_cursor_is_400(client: httpx.AsyncClient) -> None:
    cursor = base64.urlsafe_b64encode(orjson.dumps(["a\x00"])).decode().rstrip("=")
    answer = await client.get("/v1/deals", params={"cursor": cursor})
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/dlq/replay", {"source_id": "a\x00b"}),
        ("POST", "/v1/sources/x/resync", {"deal_ids": ["\x00"]}),
        ("POST", "/v1/webhook-requests/replay", {"source_id": "\x00"}),
    ],
)
async def test_nul_in_a_json_body_is_422(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "The body must not contain NUL characters."


async def test_escaped_backslash_before_u0000_is_not_a_nul(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/dlq/replay", json={"source_id": "a\\u0000b"})
    assert answer.status_code == 200, answer.text


async def test_nul_in_a_header_is_no_500(stack_url: str) -> None:
    parts = urlsplit(stack_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET /v1/deals HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {ADMIN_KEY}\r\nX-Request-ID: a\x00b\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    writer.close()
    assert answer.startswith((b"HTTP/1.1 2", b"HTTP/1.1 4")), answer


@pytest.mark.parametrize(
    "params",
    [
        {"as_of": OVERFLOWING},
        {"updated_since": OVERFLOWING},
        {"as_of": "2026-01-01T00:00:00"},
        {"updated_since": "2026-01-01T00:00:00"},
    ],
)
async def test_overflowing_or_naive_datetimes_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    for path in ("/v1/deals", "/v1/deals/d-1", "/v1/deals/d-1/history"):
        if "updated_since" in params and path != "/v1/deals":
            continue
        answer = await client.get(path, params=params)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/v1/forecast/dead-letters/{BEYOND_INT64}/replay", None),
        ("GET", f"/v1/sources/x/resync/{BEYOND_INT64}", None),
        ("GET", f"/v1/webhook-requests/{BEYOND_INT64}", None),
        ("POST", "/v1/webhook-requests/replay", {"ids": [BEYOND_INT64]}),
        ("POST", "/v1/dlq/replay", {"ids": [BEYOND_INT64]}),
    ],
)
async def test_ids_beyond_64_bits_are_422(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("data", "time", "reason"),
    [
        ({"name": "a\x00b"}, "2026-01-01T00:00:00Z", "NUL"),
        ({"properties": {"k\x00": 1}}, "2026-01-01T00:00:00Z", "NUL"),
        ({"properties": _nested(300)}, "2026-01-01T00:00:00Z", "JSON"),
        ({}, OVERFLOWING, "time"),
        ({}, "2026-01-01T00:00:00", "time"),
        ({"created_at": "2026-01-01T00:00:00"}, "2026-01-01T00:00:00Z", "data.created_at"),
        ({"created_at": OVERFLOWING}, "2026-01-01T00:00:00Z", "data.created_at"),
    ],
)
async def test_unstorable_events_are_rejected_alone(
    client: httpx.AsyncClient, data: dict[str, object], time: str, reason: str
) -> None:
    bad = event(CREATED, {"deal_id": "edge-bad", **data}, time=time)
    good = event(CREATED, {"deal_id": "edge-good"}, time="2026-01-01T00:00:00Z")
    answer = await client.post("/v1/events", json=[bad, good])
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["accepted"] == 1
    assert [r["index"] for r in result["rejected"]] == [0]
    assert reason in result["rejected"][0]["reason"]


async def test_zero_with_a_huge_exponent_is_stored_as_zero(client: httpx.AsyncClient) -> None:
    """PostgreSQL cannot store `0E+999999999`: accepted, it used to be dead-lettered by the
    worker; it is zero, and applied as zero."""
    created = event(
        CREATED,
        {"deal_id": "edge-zero-exp", "amount": "0e999999999", "currency": "USD"},
        time="2026-01-01T00:00:00Z",
    )
    answer = await client.post("/v1/events", json=[created])
    assert answer.json() == {"accepted": 1, "duplicates": 0, "rejected": []}

    async def stored() -> dict[str, object] | None:
        deal = await client.get("/v1/deals/edge-zero-exp")
        return deal.json() if deal.status_code == 200 else None

    assert (await eventually(stored))["amount"] == "0"


async def test_put_source_documents_201_and_every_route_its_problems(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    put = spec["paths"]["/v1/sources/{source_id}"]["put"]["responses"]
    assert {"200", "201", "401", "403", "409", "413", "422"} <= set(put)
    for methods in spec["paths"].values():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (operation, status)
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"])
    assert "Problem" in spec["components"]["schemas"]
