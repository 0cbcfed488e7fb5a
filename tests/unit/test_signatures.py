"""Webhook authentication, against the vectors HubSpot's own SDKs publish
(HubSpot/hubspot-api-python tests/spec/utils/test_signature.py; the v3 vector also in the
Ruby SDK's spec/helpers/signature_spec.rb)."""

from __future__ import annotations

import base64
from types import ModuleType
from typing import Any

import pytest

from services.pipeline_api.crm import signatures
from services.pipeline_api.crm.hubspot import signatures as hubspot_signatures
from services.pipeline_api.crm.hubspot.signatures import (
    HubSpotSignatures,
    check_hubspot_headers,
    hubspot_v1,
    hubspot_v2,
    hubspot_v3,
)
from services.pipeline_api.crm.pipedrive.auth import verify_basic
from services.pipeline_api.crm.salesforce import signatures as salesforce_signatures
from services.pipeline_api.crm.salesforce.signatures import (
    check_relay_headers,
    relay_signature,
    token_matches,
    verify_relay,
)
from services.pipeline_api.crm.signatures import SignatureError

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = "{'example_field':'example_value'}"
URL = "https://www.example.com/webhook_uri"


def verify_hubspot(*, version: str, secrets: list[str], **request: Any) -> None:
    """One source's check of one request."""
    HubSpotSignatures(**request).verify(version, secrets)


def test_published_v1_vector() -> None:
    assert hubspot_v1(SECRET, BODY) == (
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    )


def test_published_v2_vectors() -> None:
    assert hubspot_v2(SECRET, "POST", URL, BODY) == (
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
    )
    assert hubspot_v2(SECRET, "GET", URL, "") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )


def test_published_v3_vector() -> None:
    assert hubspot_v3(SECRET, "POST", URL, BODY, "15000000") == (
        "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
    )


def _v3_headers(signature: str, timestamp: int) -> dict[str, str]:
    return {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": str(timestamp)}


def test_v3_accepts_within_five_minutes_with_either_active_secret() -> None:
    now = 1_700_000_000_000
    signed = hubspot_v3("old-secret", "POST", URL, BODY, str(now - 299_000))
    verify_hubspot(
        version="v3",
        secrets=["new-secret", "old-secret"],
        method="POST",
        uri=URL,
        body=BODY.encode(),
        headers=_v3_headers(signed, now - 299_000),
        now_ms=now,
    )


@pytest.mark.parametrize("age_ms", [300_001, -300_001])
def test_v3_rejects_stale_or_future_timestamps(age_ms: int) -> None:
    now = 1_700_000_000_000
    signed = hubspot_v3(SECRET, "POST", URL, BODY, str(now - age_ms))
    with pytest.raises(SignatureError, match="away from now"):
        verify_hubspot(
            version="v3",
            secrets=[SECRET],
            method="POST",
            uri=URL,
            body=BODY.encode(),
            headers=_v3_headers(signed, now - age_ms),
            now_ms=now,
        )


def test_v3_rejects_tampered_body_wrong_secret_and_missing_headers() -> None:
    now = 1_700_000_000_000
    signed = hubspot_v3(SECRET, "POST", URL, BODY, str(now))
    for secrets, body in (([SECRET], BODY + " "), (["other"], BODY)):
        with pytest.raises(SignatureError, match="does not match"):
            verify_hubspot(
                version="v3",
                secrets=secrets,
                method="POST",
                uri=URL,
                body=body.encode(),
                headers=_v3_headers(signed, now),
                now_ms=now,
            )
    with pytest.raises(SignatureError, match="missing"):
        verify_hubspot(
            version="v3", secrets=[SECRET], method="POST", uri=URL, body=b"", headers={}, now_ms=now
        )


def test_v3_accepts_the_uri_percent_decoded_too() -> None:
    now = 1_700_000_000_000
    encoded = "https://hooks.example.com/v1/webhooks/hubspot?x=a%3Ab"
    signed = hubspot_v3(
        SECRET, "POST", "https://hooks.example.com/v1/webhooks/hubspot?x=a:b", BODY, str(now)
    )
    verify_hubspot(
        version="v3",
        secrets=[SECRET],
        method="POST",
        uri=encoded,
        body=BODY.encode(),
        headers=_v3_headers(signed, now),
        now_ms=now,
    )


def test_v1_and_v2_verification() -> None:
    verify_hubspot(
        version="v1",
        secrets=[SECRET],
        method="POST",
        uri=URL,
        body=BODY.encode(),
        headers={"x-hubspot-signature": hubspot_v1(SECRET, BODY)},
        now_ms=0,
    )
    verify_hubspot(
        version="v2",
        secrets=[SECRET],
        method="POST",
        uri=URL,
        body=BODY.encode(),
        headers={"x-hubspot-signature": hubspot_v2(SECRET, "POST", URL, BODY)},
        now_ms=0,
    )
    with pytest.raises(SignatureError):
        verify_hubspot(
            version="v2",
            secrets=[SECRET],
            method="POST",
            uri=URL + "/x",
            body=BODY.encode(),
            headers={"x-hubspot-signature": hubspot_v2(SECRET, "POST", URL, BODY)},
            now_ms=0,
        )


def test_relay_signature_window_and_rotation() -> None:
    body = b'{"x":1}'
    sig = relay_signature("s2", "1000", body)
    headers = {"x-salesops-signature": f"sha256={sig}", "x-salesops-timestamp": "1000"}
    verify_relay(secrets=["s1", "s2"], body=body, headers=headers, now_s=1200)
    with pytest.raises(SignatureError, match="window"):
        verify_relay(secrets=["s2"], body=body, headers=headers, now_s=1400)
    with pytest.raises(SignatureError, match="does not match"):
        verify_relay(secrets=["s1"], body=body, headers=headers, now_s=1000)


ODD_TIMESTAMPS = ["9" * 5000, "1" * 17, "\u00b2\u00b3", "\u0661\u0662", "-5", "1e3", " 1", ""]


@pytest.mark.parametrize("timestamp", ODD_TIMESTAMPS)
def test_timestamps_must_be_short_ascii_digits(timestamp: str) -> None:
    relay = {"x-salesops-signature": "sha256=00", "x-salesops-timestamp": timestamp}
    with pytest.raises(SignatureError, match="timestamp"):
        check_relay_headers(headers=relay, now_s=1000)
    hubspot = {"x-hubspot-signature-v3": "x", "x-hubspot-request-timestamp": timestamp}
    with pytest.raises(SignatureError, match=r"timestamp|missing"):
        check_hubspot_headers(version="v3", headers=hubspot, now_ms=1000)


def test_headers_are_checked_before_the_body() -> None:
    """A body that is not even UTF-8 is never looked at when the headers already fail."""
    stale = {"x-hubspot-signature-v3": "x", "x-hubspot-request-timestamp": "1"}
    with pytest.raises(SignatureError, match="ms away"):
        verify_hubspot(
            version="v3",
            secrets=[SECRET],
            method="POST",
            uri=URL,
            body=b"\xff",
            headers=stale,
            now_ms=10**12,
        )
    with pytest.raises(SignatureError, match="not UTF-8"):
        verify_hubspot(
            version="v1",
            secrets=[SECRET],
            method="POST",
            uri=URL,
            body=b"\xff",
            headers={"x-hubspot-signature": "x"},
            now_ms=0,
        )


def test_token_matches_only_a_non_empty_secret() -> None:
    assert token_matches(["a", "b"], "b")
    assert not token_matches(["a"], "b")
    assert not token_matches([], "")
    assert not token_matches([""], "")


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def test_basic_auth() -> None:
    verify_basic(user="pd", secrets=["p1", "p2"], headers=_basic("pd", "p2"))
    for headers in (_basic("pd", "nope"), _basic("other", "p1"), {}, {"authorization": "Basic %%"}):
        with pytest.raises(SignatureError):
            verify_basic(user="pd", secrets=["p1"], headers=headers)
    with pytest.raises(SignatureError, match="no Basic credentials"):
        verify_basic(user=None, secrets=[], headers=_basic("pd", "p1"))


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many candidates each constant-time comparison weighed."""
    counts: list[int] = []
    matches = signatures.matches

    def counting(expected: list[str], given: str) -> bool:
        counts.append(len(expected))
        return matches(expected, given)

    monkeypatch.setattr(signatures, "matches", counting)
    return counts


def _signed_with(monkeypatch: pytest.MonkeyPatch, module: ModuleType, function: str) -> list[str]:
    """The secret of each signature `function` (of its CRM's `module`) computes from now on."""
    secrets: list[str] = []
    sign = getattr(module, function)

    def counting(secret: str, *rest: str) -> str:
        secrets.append(secret)
        return str(sign(secret, *rest))

    monkeypatch.setattr(module, function, counting)
    return secrets


@pytest.mark.parametrize("secrets", [[], ["s1"], ["s1", "s2"]])
def test_checks_cost_the_same_for_unknown_sources_and_any_number_of_secrets(
    secrets: list[str], compared: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    hmacs = _signed_with(monkeypatch, salesforce_signatures, "relay_signature")
    headers = {"x-salesops-signature": "sha256=00", "x-salesops-timestamp": "1000"}
    with pytest.raises(SignatureError):
        verify_relay(secrets=secrets, body=b"{}", headers=headers, now_s=1000)
    assert len(hmacs) == signatures.MAX_SECRETS
    assert not token_matches(secrets, "wrong")
    user = "pd" if secrets else None
    with pytest.raises(SignatureError):
        verify_basic(user=user, secrets=secrets, headers=_basic("pd", "wrong"))
    assert compared == [signatures.MAX_SECRETS] * 3


def test_each_distinct_hubspot_signature_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources of one app share its secret: five portals cost one HMAC per URI form."""
    hmacs = _signed_with(monkeypatch, hubspot_signatures, "hubspot_v3")
    uri = "https://example.com/hook?x=%20"
    headers = {
        "x-hubspot-signature-v3": hubspot_v3("app", "POST", uri, "[]", "1000"),
        "x-hubspot-request-timestamp": "1000",
    }
    checks = HubSpotSignatures(method="POST", uri=uri, body=b"[]", headers=headers, now_ms=1000)
    for _ in range(5):
        checks.verify("v3", ["app"])
    checks.verify("v3", ["other", "app"])  # mid-rotation: "app" reused, "other" computed
    assert sorted(hmacs) == ["app", "app", "other", "other"]


@pytest.mark.parametrize(
    ("timestamp", "outside"),
    [("1000", None), ("700", None), ("1300", None), ("699", 301), ("1301", -301)],
)
def test_the_timestamp_window_is_inclusive_both_ways(timestamp: str, outside: int | None) -> None:
    assert signatures.outside_window(timestamp, "seconds", now=1000, max_age=300) == outside


def test_the_timestamp_window_refuses_what_is_not_short_digits() -> None:
    with pytest.raises(signatures.SignatureError, match="epoch seconds"):
        signatures.outside_window("1e3", "seconds", now=1000, max_age=300)
