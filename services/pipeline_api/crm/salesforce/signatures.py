"""Salesforce webhook authentication. Pure: no I/O, clock passed in.

Change Data Capture arrives through a relay we document, which signs each body with the
source's secret (HMAC-SHA256 over `timestamp.body`); Outbound Messages carry no signature,
so the endpoint URL's `?token=` is the credential.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from services.pipeline_api.crm import signatures
from services.pipeline_api.crm.signatures import SignatureError, outside_window, padded

RELAY_MAX_AGE_S = 5 * 60


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
    if outside_window(timestamp, "seconds", now=now_s, max_age=RELAY_MAX_AGE_S) is not None:
        raise SignatureError("relay timestamp outside the 5-minute window")


def verify_relay(
    *, secrets: list[str], body: bytes, headers: Mapping[str, str], now_s: int
) -> None:
    """Headers first (`check_relay_headers`), then the body: always `MAX_SECRETS` HMACs,
    so an unknown source (no secrets) and a source's rotation do not show in the timing."""
    check_relay_headers(headers=headers, now_s=now_s)
    timestamp = headers["x-salesops-timestamp"]
    expected = [relay_signature(s, timestamp, body) for s in padded(secrets)]
    if not signatures.matches(expected, headers["x-salesops-signature"].removeprefix("sha256=")):
        raise SignatureError("relay signature does not match")


def token_matches(secrets: list[str], token: str) -> bool:
    """A URL token (Salesforce Outbound Messages) against a source's secrets; an empty
    token matches nothing."""
    return signatures.matches(padded(secrets), token) and bool(token)
