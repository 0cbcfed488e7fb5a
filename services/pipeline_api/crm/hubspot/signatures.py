"""HubSpot webhook signatures (v1, v2, v3), checked headers first, then the body. Pure.

v1 and v2 are SHA-256 hex digests of the secret plus the body (v2: plus method and URI);
v3 is a base64 HMAC-SHA256 over method, URI, body and a timestamp that must be within
five minutes. The portals of one HubSpot app share its secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import unquote

from services.pipeline_api.crm import signatures
from services.pipeline_api.crm.signatures import SignatureError, outside_window

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000


def hubspot_v1(secret: str, body: str) -> str:
    return hashlib.sha256((secret + body).encode()).hexdigest()


def hubspot_v2(secret: str, method: str, uri: str, body: str) -> str:
    return hashlib.sha256((secret + method + uri + body).encode()).hexdigest()


def hubspot_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    message = (method + uri + body + timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def uri_forms(uri: str) -> list[str]:
    """The URI as sent and percent-decoded: HubSpot's SDKs hash it as sent, while some
    published receivers decode it first; both are signed with the same secret."""
    decoded = unquote(uri)
    return [uri] if decoded == uri else [uri, decoded]


def check_hubspot_headers(*, version: str, headers: Mapping[str, str], now_ms: int) -> str:
    """What can be checked before the body is read: the signature header of `version` is
    present and, for v3, its timestamp is short and inside the window. Returns the
    signature given."""
    if version != "v3":
        given = headers.get("x-hubspot-signature")
        if not given:
            raise SignatureError("missing X-HubSpot-Signature")
        return given
    given = headers.get("x-hubspot-signature-v3")
    timestamp = headers.get("x-hubspot-request-timestamp")
    if not given or not timestamp:
        raise SignatureError("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    age = outside_window(timestamp, "milliseconds", now=now_ms, max_age=HUBSPOT_MAX_AGE_MS)
    if age is not None:
        raise SignatureError(f"timestamp is {age} ms away from now")
    return given


class HubSpotSignatures:
    """The signatures one request may carry, each distinct (version, secret, URI form)
    computed at most once: the portals of one HubSpot app share its secret, so checking a
    batch source by source would hash the body (up to the intake limit) once per portal."""

    def __init__(
        self, *, method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int
    ) -> None:
        self._method = method
        self._uris = uri_forms(uri)
        self._body = body
        self._text: str | None = None
        self._headers = headers
        self._now_ms = now_ms
        self._computed: dict[tuple[str, str, str], str] = {}

    def verify(self, version: str, secrets: list[str]) -> None:
        """Headers first (`check_hubspot_headers`), then the body."""
        if not secrets:
            raise SignatureError("the source has no secret configured")
        given = check_hubspot_headers(version=version, headers=self._headers, now_ms=self._now_ms)
        uris = [""] if version == "v1" else self._uris
        expected = [self._signature(version, s, u) for s in secrets for u in uris]
        if not signatures.matches(expected, given):
            raise SignatureError(f"{version} signature does not match")

    def _signature(self, version: str, secret: str, uri: str) -> str:
        key = (version, secret, uri)
        if key not in self._computed:
            if self._text is None:
                self._text = _text(self._body)
            text, method = self._text, self._method
            if version == "v3":
                timestamp = self._headers["x-hubspot-request-timestamp"]
                self._computed[key] = hubspot_v3(secret, method, uri, text, timestamp)
            elif version == "v1":
                self._computed[key] = hubspot_v1(secret, text)
            else:
                self._computed[key] = hubspot_v2(secret, method, uri, text)
        return self._computed[key]


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise SignatureError(
            "the body is not UTF-8, so it cannot carry a HubSpot signature"
        ) from exc
