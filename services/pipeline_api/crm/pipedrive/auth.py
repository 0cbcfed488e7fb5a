"""Pipedrive webhook authentication: HTTP Basic, as Pipedrive sends it when the webhook
has http_auth_* set. Pure."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from services.pipeline_api.crm import signatures
from services.pipeline_api.crm.signatures import DECOYS, SignatureError, padded


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
    user_ok = hmac.compare_digest(given_user.encode(), (user or DECOYS[0]).encode())
    password_ok = signatures.matches(padded(secrets), given_password)
    if user is None or not secrets:
        raise SignatureError("the source has no Basic credentials configured")
    if not (password_ok and user_ok):
        raise SignatureError("Basic credentials do not match")
