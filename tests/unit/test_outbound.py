"""The outbound policy: which URLs a source's re-sync may call, and which addresses."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.pipeline_api.crm.http import error_code
from services.pipeline_api.crm.outbound import OutboundPolicy, OutboundRefused
from services.pipeline_api.sources.schemas import SourceIn

STRICT = OutboundPolicy()


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("hubspot", "https://api.hubapi.com"),
        ("salesforce", "https://acme.my.salesforce.com"),
        ("salesforce", "https://login.salesforce.com/services/oauth2/token"),
        ("salesforce", "https://acme--sandbox.sandbox.my.salesforce.com"),
        ("salesforce", "https://acme.lightning.force.com"),
        ("pipedrive", "https://acme.pipedrive.com"),
        ("pipedrive", "https://api.pipedrive.com/"),
    ],
)
def test_each_crm_s_own_https_hosts_are_allowed(kind: str, url: str) -> None:
    STRICT.check_url(url, kind)


@pytest.mark.parametrize(
    ("kind", "url", "reason"),
    [
        ("hubspot", "http://api.hubapi.com", "must use https"),
        ("hubspot", "https://evil.example", "'evil.example' is not a hubspot host"),
        ("hubspot", "https://acme.my.salesforce.com", "is not a hubspot host"),
        ("salesforce", "https://salesforce.com.evil.example", "is not a salesforce host"),
        ("pipedrive", "https://evilpipedrive.com", "is not a pipedrive host"),
        ("hubspot", "https://user:pw@api.hubapi.com", "without userinfo"),
        ("hubspot", "ftp://api.hubapi.com", "must use https"),
        ("hubspot", "https://127.0.0.1", "is not a hubspot host"),
        ("hubspot", "http://localhost:8080", "must use https"),
    ],
)
def test_anything_else_is_refused_by_default(kind: str, url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason):
        STRICT.check_url(url, kind)


def test_the_allow_list_adds_hosts_but_never_inward_addresses() -> None:
    policy = OutboundPolicy(extra_hosts=("crm.acme.example", "169.254.169.254", "10.1.2.3"))
    policy.check_url("https://crm.acme.example/api", "pipedrive")
    for inward in ("https://169.254.169.254/latest/meta-data", "https://10.1.2.3"):
        with pytest.raises(OutboundRefused, match="inside the network"):
            policy.check_url(inward, "hubspot")


def test_loopback_only_when_the_dev_setting_allows_it() -> None:
    dev = OutboundPolicy(allow_loopback=True)
    for url in ("http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"):
        dev.check_url(url, "hubspot")
    with pytest.raises(OutboundRefused):
        dev.check_url("http://10.0.0.1", "hubspot")


def resolver_to(*addresses: str, **by_host: str) -> OutboundPolicy:
    """A policy whose DNS answers `by_host[host]` (dots as underscores), else `addresses`."""

    async def resolve(host: str, port: int) -> list[str]:
        return [by_host.get(host.replace(".", "_"), a) for a in addresses]

    return OutboundPolicy(resolver=resolve)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.7",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "64:ff9b:1::5db8:d822",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "::127.0.0.1",
        "::",
        "::ffff:0:7f00:1",
        "fec0::1",
        "192.0.0.192",
        "192.0.0.9",
        "198.18.0.1",
        "240.0.0.1",
        "224.0.0.1",
        "ff02::1",
        "2001:db8::1",
    ],
)
async def test_a_crm_name_resolving_inward_is_refused(address: str) -> None:
    with pytest.raises(OutboundRefused, match=r"resolves to .*inside the network"):
        await resolver_to("93.184.216.34", address).addresses("acme.pipedrive.com", 443)


async def test_public_addresses_are_returned_to_connect_to() -> None:
    public = ("93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822", "2002:5db8:d822::1")
    assert await resolver_to(*public).addresses("acme.pipedrive.com", 443) == list(public)


async def test_a_source_is_verified_by_every_url_it_would_call() -> None:
    source = SourceIn.model_validate(
        {
            "id": "sf",
            "kind": "salesforce",
            "account_id": "00D",
            "api_base_url": "https://acme.my.salesforce.com",
            "oauth": {"client_id": "c", "token_url": "https://login.salesforce.com/x"},
        }
    )
    await resolver_to("93.184.216.34").verify_source(source)
    inward_token_host = resolver_to("93.184.216.34", login_salesforce_com="10.0.0.1")
    with pytest.raises(OutboundRefused, match=r"'login\.salesforce\.com' resolves to 10\.0\.0\.1"):
        await inward_token_host.verify_source(source)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired: tok=abc"}],
            "INVALID_SESSION_ID",
        ),
        ({"category": "INVALID_AUTHENTICATION", "message": "secret"}, "INVALID_AUTHENTICATION"),
        ({"error": "invalid_grant", "error_description": "expired"}, "invalid_grant"),
        ({"success": False, "error": "Unauthorized <script>"}, None),
        ({"error": "evil.example:8080"}, None),
        ({"error": "a" * 49}, None),
        ({"error": "a" * 48}, "a" * 48),
        ("<html>proxy error</html>", None),
        (None, None),
    ],
)
def test_only_a_short_error_code_is_taken_from_an_error_body(
    body: object, code: str | None
) -> None:
    assert error_code(body) == code


@pytest.mark.parametrize("host", [f"{'a' * 64}.hubapi.com", "x..hubapi.com", ".hubapi.com"])
def test_a_host_name_dns_would_not_take_is_refused_by_name(host: str) -> None:
    with pytest.raises(OutboundRefused, match="not a valid host name"):
        STRICT.check_url(f"https://{host}", "hubspot")


async def test_a_resolver_encoding_error_is_a_refusal_at_connect_time() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise UnicodeError("label empty or too long")

    with pytest.raises(OutboundRefused, match="not a valid host name"):
        await OutboundPolicy(resolver=resolve).addresses("x..hubapi.com", 443)


async def test_verifying_a_source_does_not_wait_on_a_hung_resolver() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        await asyncio.sleep(60)
        return ["93.184.216.34"]

    source = SourceIn.model_validate(
        {"id": "h", "kind": "hubspot", "account_id": "1", "api_base_url": "https://api.hubapi.com"}
    )
    started = time.monotonic()
    await OutboundPolicy(resolver=resolve, verify_seconds=0.1).verify_source(source)
    assert time.monotonic() - started < 5


def test_an_invalid_idna_label_is_not_a_url() -> None:
    with pytest.raises(OutboundRefused, match="is not a URL"):
        STRICT.check_url("https://xn--zz.hubapi.com", "hubspot")
