"""`Settings` from `SALESOPS_*` environment variables."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from shared.settings import (
    DEFAULT_LOST_STAGES,
    DEFAULT_WON_STAGES,
    ApiKeyGrant,
    Settings,
    key_id,
)

FERNET_KEY = "3q2-7wJ9d8bY6l1sVt4mQxZ0cR5nK2aH8pE7uW1oL3I="


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the SALESOPS_ variables it sets itself."""
    for name in list(os.environ):
        if name.upper().startswith("SALESOPS_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.environment == "development"
    assert s.intake_max_events == 1000
    assert s.intake_max_bytes == 5 * 1024 * 1024
    assert s.database_url is None
    assert s.kafka_bootstrap_servers is None
    assert s.api_keys == {}
    assert s.won_stages == DEFAULT_WON_STAGES
    assert s.lost_stages == DEFAULT_LOST_STAGES


def test_reads_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_INTAKE_MAX_EVENTS", "25")
    monkeypatch.setenv("SALESOPS_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("SALESOPS_LOG_JSON", "false")
    monkeypatch.setenv("INTAKE_MAX_BYTES", "2048")  # no prefix: ignored
    s = Settings()
    assert s.intake_max_events == 25
    assert s.kafka_bootstrap_servers == "broker:9092"
    assert s.require_kafka() == "broker:9092"
    assert s.log_json is False
    assert s.intake_max_bytes == 5 * 1024 * 1024


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
    ],
)
def test_database_url_uses_asyncpg(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("SALESOPS_DATABASE_URL", url)
    s = Settings()
    assert s.database_url == expected
    assert s.require_database_url() == expected


def test_database_url_rewritten_when_passed_directly() -> None:
    assert Settings(database_url="postgres://h/db").database_url == "postgresql+asyncpg://h/db"


def test_missing_urls_raise_on_require() -> None:
    s = Settings()
    with pytest.raises(RuntimeError, match="SALESOPS_DATABASE_URL"):
        s.require_database_url()
    with pytest.raises(RuntimeError, match="SALESOPS_KAFKA_BOOTSTRAP_SERVERS"):
        s.require_kafka()


def test_api_keys_parsed_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SALESOPS_API_KEYS", '{"k1": ["events:write"], "k2": ["forecast:read", "events:read"]}'
    )
    s = Settings()
    assert s.api_keys == {"k1": ["events:write"], "k2": ["forecast:read", "events:read"]}


def test_api_keys_malformed_json_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_API_KEYS", "k1=admin")
    with pytest.raises(SettingsError, match="api_keys"):
        Settings()


def test_production_without_api_keys_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SALESOPS_API_KEYS must be set in production"):
        Settings()


def test_production_with_api_keys_and_secrets_keys_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESOPS_API_KEYS", '{"k": ["admin"]}')
    monkeypatch.setenv("SALESOPS_SECRETS_KEYS", f'["{FERNET_KEY}"]')
    s = Settings()
    assert s.environment == "production"
    assert s.api_keys == {"k": ["admin"]}


def test_production_without_secrets_keys_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESOPS_API_KEYS", '{"k": ["admin"]}')
    with pytest.raises(ValidationError, match="SALESOPS_SECRETS_KEYS must be set in production"):
        Settings()
    monkeypatch.setenv("SALESOPS_ALLOW_UNSEALED_SECRETS", "true")
    assert Settings().secrets_keys == []


def test_api_keys_bound_to_sources_beside_the_old_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SALESOPS_API_KEYS",
        '{"old": ["events:write"], '
        '"new": {"scopes": ["events:write"], "sources": ["app://billing/*"]}}',
    )
    keys = Settings().api_keys
    assert keys["old"] == ["events:write"]
    assert keys["new"] == ApiKeyGrant(scopes=["events:write"], sources=["app://billing/*"])


@pytest.mark.parametrize(
    "grant",
    [
        '{"scopes": ["admin"], "sources": ["app://x"]}',
        '{"scopes": ["events:write"], "sources": []}',
        '{"scopes": ["events:write"], "source": ["app://x"]}',
    ],
)
def test_api_key_bindings_that_promise_nothing_are_refused(
    monkeypatch: pytest.MonkeyPatch, grant: str
) -> None:
    monkeypatch.setenv("SALESOPS_API_KEYS", f'{{"k": {grant}}}')
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("SALESOPS_INTAKE_MAX_EVENTS", "0"), ("SALESOPS_INTAKE_MAX_BYTES", "1023")],
)
def test_limits_have_lower_bounds(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_dev_api_key_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_DEV_API_KEY", "hunter2")
    s = Settings()
    assert s.dev_api_key is not None
    assert s.dev_api_key.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)


def test_secrets_keys_are_a_json_list_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_SECRETS_KEYS", '["k1", "k2"]')
    settings = Settings()
    assert [k.get_secret_value() for k in settings.secrets_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings)


@pytest.mark.parametrize(
    "grant",
    ['{"scopes": ["admin"], "sources": ["app://x"]}', "5", '{"scopes": ["a"], "extra": 1}'],
)
def test_an_invalid_grant_names_its_key_by_digest_never_the_key(
    monkeypatch: pytest.MonkeyPatch, grant: str
) -> None:
    key = "sk-live-Zq8vN3"
    monkeypatch.setenv("SALESOPS_API_KEYS", f'{{"{key}": {grant}}}')
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert key_id(key) in str(refused.value)
    assert key not in str(refused.value)


def test_a_production_refusal_does_not_echo_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESOPS_API_KEYS", '{"sk-live-Zq8vN3": ["admin"]}')
    with pytest.raises(ValidationError, match="SALESOPS_SECRETS_KEYS") as refused:
        Settings()
    assert "sk-live-Zq8vN3" not in str(refused.value)


@pytest.mark.parametrize("name", ["Production", " PRODUCTION "])
def test_production_is_production_in_any_case(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", name)
    with pytest.raises(ValidationError, match="SALESOPS_API_KEYS must be set in production"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SALESOPS_OUTBOUND_ALLOW_LOOPBACK", "true", "ALLOW_LOOPBACK is for development"),
        ("SALESOPS_SECRETS_KEYS", f'["{FERNET_KEY}", "not-a-key"]', "key 2 is not a Fernet key"),
    ],
)
def test_production_refuses_development_settings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv("SALESOPS_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESOPS_API_KEYS", '{"k": ["admin"]}')
    monkeypatch.setenv("SALESOPS_SECRETS_KEYS", f'["{FERNET_KEY}"]')
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=reason) as refused:
        Settings()
    assert "not-a-key" not in str(refused.value)
