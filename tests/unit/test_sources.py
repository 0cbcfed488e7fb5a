"""Sources as operators declare them: secrets stay write-only, OAuth only where it exists."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.pipeline_api.sources.schemas import (
    SALESFORCE_TOKEN_URL,
    SourceIn,
    SourceOut,
    open_values,
    secret_values,
)
from services.pipeline_api.sources.secret_box import SecretBox, SecretBoxError, new_key

SALESFORCE = {
    "id": "sf",
    "kind": "salesforce",
    "account_id": "00D000000000001",
    "oauth": {"client_id": "key", "client_secret": "s3cret", "refresh_token": "r3fresh"},
}


def test_oauth_is_refused_for_crms_without_it() -> None:
    with pytest.raises(ValidationError, match="oauth is for Salesforce"):
        SourceIn.model_validate({**SALESFORCE, "kind": "hubspot"})


@pytest.mark.parametrize("kind", ["hubspot", "pipedrive"])
def test_the_adapter_refusal_is_the_api_error_text(kind: str) -> None:
    """The adapter's `check_source` message is the one the 422 has always carried."""
    with pytest.raises(ValidationError) as refused:
        SourceIn.model_validate({**SALESFORCE, "kind": kind})
    [error] = refused.value.errors()
    assert error["msg"] == "Value error, oauth is for Salesforce sources; other CRMs use api_token"


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


def test_sealed_secrets_open_with_any_listed_key_and_only_then() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox([old]).seal("hs-secret")
    assert sealed.startswith("sealed:v1:")
    assert "hs-secret" not in sealed
    assert SecretBox([new, old]).open(sealed) == "hs-secret", "rotation: old keys still open"
    assert SecretBox([new, old]).seal("x") != SecretBox([new, old]).seal("x"), "fresh IV"
    with pytest.raises(SecretBoxError, match="not in SALESOPS_SECRETS_KEYS"):
        SecretBox([new]).open(sealed)
    with pytest.raises(SecretBoxError, match="not set"):
        SecretBox().open(sealed)
    assert SecretBox([new]).open("stored-before-keys") == "stored-before-keys"
    with pytest.raises(ValueError, match="Fernet keys"):
        SecretBox(["not-a-key"])


def test_a_sealed_source_keeps_no_secret_in_clear_and_reads_back_whole() -> None:
    source = SourceIn.model_validate(
        {**SALESFORCE, "secrets": {"current": "relay-secret"}, "api_token": "tok3n"}
    )
    box = SecretBox([new_key()])
    stored = secret_values(source, box.seal)
    text = json.dumps(stored)
    for secret in ("relay-secret", "tok3n", "s3cret", "r3fresh"):
        assert secret not in text
    again = SourceIn.model_validate(open_values(stored, box.open))
    assert secret_values(again) == secret_values(source)
