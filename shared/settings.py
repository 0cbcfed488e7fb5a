"""Process configuration, read from `SALESOPS_*` environment variables.

Unset connection URLs are meaningful: `salesops dev` and the test suite start embedded
PostgreSQL / Tansu when they are absent, so they stay `None` rather than defaulting to a
localhost guess that would fail confusingly on a fresh machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WON_STAGES = ("closedwon", "closed_won", "won", "closed won")
DEFAULT_LOST_STAGES = ("closedlost", "closed_lost", "lost", "closed lost")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore")

    environment: str = "development"
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    data_dir: Path = Path(".salesops")

    api_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="API key -> scopes. The dev stack adds its admin key here.",
    )
    dev_api_key: SecretStr | None = None
    secrets_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Fernet keys (JSON list) sealing CRM secrets at rest; the first seals",
    )

    intake_max_events: int = Field(1000, ge=1)
    intake_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    public_base_url: str | None = Field(
        None,
        description="The base URL CRMs call (scheme://host[:port]), when a proxy rewrites it; "
        "HubSpot signs the URL it called",
    )
    intake_writers: int = Field(2, ge=1, description="Concurrent group-commit transactions")

    topic_partitions: int = Field(3, ge=1)
    relay_batch_size: int = Field(500, ge=1)
    relay_poll_seconds: float = Field(0.5, gt=0)
    broker_check_seconds: float = Field(2.0, gt=0)
    broker_wedged_after: int = Field(
        3,
        ge=1,
        description="Failed publish cycles in a row, with the broker answering, after which "
        "a partition counts as wedged",
    )
    embedded_broker_restart_file: Path | None = Field(
        None,
        description="Set by `salesops dev`: where the relay asks the embedded broker's "
        "supervisor for a new broker when a partition is wedged",
    )

    consumer_max_records: int = Field(500, ge=1)
    db_pool_size: int = Field(10, ge=1)

    won_stages: tuple[str, ...] = DEFAULT_WON_STAGES
    lost_stages: tuple[str, ...] = DEFAULT_LOST_STAGES

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        """Accept the plain `postgresql://` URLs operators copy around; we always use asyncpg."""
        if value is None:
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _no_open_production(self) -> Settings:
        if self.environment == "production" and not self.api_keys:
            raise ValueError("SALESOPS_API_KEYS must be set in production; no key means no access")
        return self

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("SALESOPS_DATABASE_URL is not set (use `salesops dev` for embedded)")
        return self.database_url

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError(
                "SALESOPS_KAFKA_BOOTSTRAP_SERVERS is not set (use `salesops dev` for embedded)"
            )
        return self.kafka_bootstrap_servers


@lru_cache
def get_settings() -> Settings:
    return Settings()
