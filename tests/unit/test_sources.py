"""Sources as operators declare them: secrets stay write-only, OAuth only where it exists."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.pipeline_api.sources import SALESFORCE_TOKEN_URL, SourceIn, SourceOut, secret_values

SALESFORCE = {
    "id": "sf",
    "kind": "salesforce",
    "account_id": "00D000000000001",
    "oauth": {"client_id": "key", "client_secret": "s3cret", "refresh_token": "r3fresh"},
}


def test_oauth_is_refused_for_crms_without_it() -> None:
    with pytest.raises(ValidationError, match="oauth is for Salesforce"):
        SourceIn.model_validate({**SALESFORCE, "kind": "hubspot"})


def test_oauth_secrets_are_shown_as_set_never_as_values() -> None:
    source = SourceIn.model_validate(SALESFORCE)
    shown = SourceOut.of(source)
    assert shown.oauth_token_url == SALESFORCE_TOKEN_URL
    assert shown.oauth_client_id == "key"
    assert shown.secrets_set == ["oauth_client_secret", "oauth_refresh_token"]
    dumped = shown.model_dump_json()
    assert "s3cret" not in dumped
    assert "r3fresh" not in dumped
    assert "r3fresh" not in repr(source)


def test_stored_form_keeps_oauth_secrets_and_reads_back() -> None:
    source = SourceIn.model_validate(SALESFORCE)
    stored = secret_values(source)
    assert stored["oauth"]["refresh_token"] == "r3fresh"
    again = SourceIn.model_validate(stored)
    assert again.oauth is not None
    assert again.oauth.client_secret is not None
    assert again.oauth.client_secret.get_secret_value() == "s3cret"
