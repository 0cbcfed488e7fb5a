"""Re-sync calls through the guarded transport, over real HTTP to the local fake CRM: an
address inside the network is refused after DNS resolution, answers are size-capped, and
a CRM's error text never reaches a job error."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from services.pipeline_api.crm.http import CrmAuthError, RetryPolicy
from services.pipeline_api.crm.hubspot.rest import HubSpotClient
from services.pipeline_api.crm.outbound import OutboundPolicy, OutboundRefused, guarded_client
from tests.support.fake_crm import FakeCrms, create_app, hubspot_deal
from tests.support.infra import serve_in_loop

pytestmark = pytest.mark.integration

TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
async def crm() -> AsyncIterator[tuple[FakeCrms, int]]:
    crms = FakeCrms()
    async with serve_in_loop(create_app(crms)) as url:
        yield crms, httpx.URL(url).port or 80


def hubspot(url: str, http: httpx.AsyncClient) -> HubSpotClient:
    return HubSpotClient(url, "hs-token", http, policy=RetryPolicy(max_attempts=1))


@pytest.mark.parametrize(
    ("policy", "base", "reason"),
    [
        # The name is allowed; the address it resolves to is not.
        (
            OutboundPolicy(extra_hosts=("localhost",)),
            "https://localhost:{port}",
            r"'localhost' resolves to (127\.0\.0\.1|::1)",
        ),
        (OutboundPolicy(), "http://127.0.0.1:{port}", "must use https"),
    ],
)
async def test_a_call_outside_the_policy_is_refused_before_it_is_sent(
    crm: tuple[FakeCrms, int], policy: OutboundPolicy, base: str, reason: str
) -> None:
    crms, port = crm
    crms.reset()
    async with guarded_client(policy, TIMEOUT) as http:
        with pytest.raises(OutboundRefused, match=reason):
            await hubspot(base.format(port=port), http).fetch_deal("1")
    assert crms.hubspot.requests == 0


async def test_an_answer_over_the_cap_is_refused_without_its_body(
    crm: tuple[FakeCrms, int],
) -> None:
    crms, port = crm
    crms.reset()
    crms.hubspot.add(hubspot_deal("77", dealname="x" * 4000))
    policy = OutboundPolicy(allow_loopback=True, max_response_bytes=2048)
    async with guarded_client(policy, TIMEOUT) as http:
        with pytest.raises(OutboundRefused, match="larger than 2048 bytes") as refused:
            await hubspot(f"http://127.0.0.1:{port}", http).fetch_deal("77")
        assert "xxxx" not in str(refused.value)
    roomy = OutboundPolicy(allow_loopback=True, max_response_bytes=64 * 1024)
    async with guarded_client(roomy, TIMEOUT) as http:
        deal = await hubspot(f"http://127.0.0.1:{port}", http).fetch_deal("77")
    assert deal is not None
    assert deal.fields["name"] == "x" * 4000


async def test_a_crm_error_body_is_never_repeated_into_the_error(
    crm: tuple[FakeCrms, int],
) -> None:
    crms, port = crm
    crms.reset()
    echo = "Authorization: Bearer hs-token-echoed-back"
    crms.hubspot.fail(
        401, {"status": "error", "message": echo, "category": "INVALID_AUTHENTICATION"}
    )
    async with guarded_client(OutboundPolicy(allow_loopback=True), TIMEOUT) as http:
        with pytest.raises(CrmAuthError) as refused:
            await hubspot(f"http://127.0.0.1:{port}", http).fetch_deal("1")
    message = str(refused.value)
    assert "401 INVALID_AUTHENTICATION" in message
    assert echo not in message
    assert "hs-token" not in message


async def chunks() -> AsyncIterator[bytes]:
    for _ in range(8):
        yield b"y" * 1024


def odd_crm() -> FastAPI:
    """Answers a CRM should not give: a long body without Content-Length, and gzip that
    was not asked for."""
    app = FastAPI()

    @app.get("/streamed")
    async def streamed() -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="application/json")

    @app.get("/gzipped")
    async def gzipped() -> Response:
        body = gzip.compress(b"[" + b"0," * 100_000 + b"0]")
        return Response(body, media_type="application/json", headers={"Content-Encoding": "gzip"})

    return app


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/streamed", "larger than 2048 bytes"), ("/gzipped", r"is compressed \(gzip\)")],
)
async def test_an_answer_is_read_only_uncompressed_and_only_up_to_the_cap(
    path: str, reason: str
) -> None:
    policy = OutboundPolicy(allow_loopback=True, max_response_bytes=2048)
    async with serve_in_loop(odd_crm()) as url, guarded_client(policy, TIMEOUT) as http:
        with pytest.raises(OutboundRefused, match=reason):
            await http.get(url + path)
