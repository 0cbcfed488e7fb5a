"""Request authentication for CRM webhooks. Pure: no I/O, clock passed in.

Failures raise `SignatureError` whose message is for our logs only; the route answers a
bare 401 so that nothing in the answer helps an attacker. Every comparison is
constant-time, and every check accepts any of a source's active secrets (rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from secrets import token_hex
from urllib.parse import unquote

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000
RELAY_MAX_AGE_S = 5 * 60
_TIMESTAMP = re.compile(r"[0-9]{1,16}")
"""An epoch timestamp header: ASCII digits, short. `str.isdigit` would let through
thousands of digits (int() refuses past 4300) and digits int() cannot read (`²`)."""


MAX_SECRETS = 2
"""A source's secrets: the current one and, during a rotation, the previous one."""
_DECOYS = tuple(token_hex(32) for _ in range(MAX_SECRETS))
"""Checked in place of secrets a source lacks: random, so they never verify."""


def _padded(secrets: list[str]) -> list[str]:
    """`secrets` made up to `MAX_SECRETS` with decoys, so a check costs the same whether a
    source is unknown or has one or two secrets, and its timing tells none of that."""
    return [*secrets, *_DECOYS[len(secrets) :]]


class SignatureError(Exception):
    """The request is not authenticated. The message is for logs, never for the client."""


def _epoch(value: str | None, unit: str) -> int:
    if value is None or not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"timestamp is not up to 16 digits of epoch {unit}")
    return int(value)


def hubspot_v1(secret: str, body: str) -> str:
    return hashlib.sha256((secret + body).encode()).hexdigest()


def hubspot_v2(secret: str, method: str, uri: str, body: str) -> str:
    return hashlib.sha256((secret + method + uri + body).encode()).hexdigest()


def hubspot_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    message = (method + uri + body + timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _matches(expected: Iterable[str], given: str) -> bool:
    # Evaluate every candidate so timing does not reveal which secret (if any) matched.
    results = [hmac.compare_digest(e.encode(), given.encode()) for e in expected]
    return any(results)


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
    age = now_ms - _epoch(timestamp, "milliseconds")
    if age > HUBSPOT_MAX_AGE_MS or age < -HUBSPOT_MAX_AGE_MS:
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
        if not _matches(expected, given):
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


def relay_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex, as a Salesforce relay must send it in
    `X-Salesops-Signature: sha256=<hex>` with `X-Salesops-Timestamp: <epoch seconds>`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_relay_headers(*, headers: Mapping[str, str], now_s: int) -> None:
    """What can be checked before the body is read: a signature header, and a timestamp
    that is short and inside the window."""
    if not headers.get("x-salesops-signature", "").startswith("sha256="):
        raise SignatureError("missing or malformed X-Salesops-Signature")
    timestamp = headers.get("x-salesops-timestamp")
    if abs(now_s - _epoch(timestamp, "seconds")) > RELAY_MAX_AGE_S:
        raise SignatureError("relay timestamp outside the 5-minute window")


def verify_relay(
    *, secrets: list[str], body: bytes, headers: Mapping[str, str], now_s: int
) -> None:
    """Headers first (`check_relay_headers`), then the body: always `MAX_SECRETS` HMACs,
    so an unknown source (no secrets) and a source's rotation do not show in the timing."""
    check_relay_headers(headers=headers, now_s=now_s)
    timestamp = headers["x-salesops-timestamp"]
    expected = [relay_signature(s, timestamp, body) for s in _padded(secrets)]
    if not _matches(expected, headers["x-salesops-signature"].removeprefix("sha256=")):
        raise SignatureError("relay signature does not match")


def token_matches(secrets: list[str], token: str) -> bool:
    """A URL token (Salesforce Outbound Messages) against a source's secrets; an empty
    token matches nothing."""
    return _matches(_padded(secrets), token) and bool(token)


def verify_basic(*, user: str | None, secrets: list[str], headers: Mapping[str, str]) -> None:
    """HTTP Basic auth, as Pipedrive sends it when the webhook has http_auth_* set."""
    header = headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        raise SignatureError("missing Basic authorization")
    try:
        given_user, _, given_password = (
            base64.b64decode(header[6:], validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError("malformed Basic authorization") from exc
    # The same comparisons whether or not the source has credentials, and however many.
    user_ok = hmac.compare_digest(given_user.encode(), (user or _DECOYS[0]).encode())
    password_ok = _matches(_padded(secrets), given_password)
    if user is None or not secrets:
        raise SignatureError("the source has no Basic credentials configured")
    if not (password_ok and user_ok):
        raise SignatureError("Basic credentials do not match")
