"""Process configuration, read from `SALESOPS_*` environment variables.

Unset connection URLs are meaningful: `salesops dev` and the test suite start embedded
PostgreSQL / Tansu when they are absent, so they stay `None` rather than defaulting to a
localhost guess that would fail confusingly on a fresh machine.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import MAX_FUTURE

DEFAULT_WON_STAGES = ("closedwon", "closed_won", "won", "closed won")
DEFAULT_LOST_STAGES = ("closedlost", "closed_lost", "lost", "closed lost")


class ApiKeyGrant(BaseModel):
    """One key's scopes and, optionally, the event sources it may write and read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scopes: list[str]
    sources: list[str] | None = Field(
        None,
        min_length=1,
        description="fnmatch patterns of CloudEvents `source` values (`app://billing/*`); "
        "absent: every source",
    )

    rep_id: str | None = Field(
        None, description="A rep's key: commission reads show only this rep's lines"
    )
    manager_id: str | None = Field(
        None,
        description="A manager's key: commission reads show this rep id's own lines and those "
        "of every rep who reported to it",
    )

    @model_validator(mode="after")
    def _admin_unbound(self) -> ApiKeyGrant:
        # Admin routes manage every CRM source; a bound admin key would promise a limit
        # that those routes do not keep.
        if "admin" in self.scopes and self.sources is not None:
            raise ValueError("an admin key cannot be bound to sources")
        if self.rep_id is not None and self.manager_id is not None:
            raise ValueError("a key belongs to a rep or to a manager, not both")
        bound = self.rep_id is not None or self.manager_id is not None
        if bound and ({"admin", "comp:admin"} & set(self.scopes)):
            raise ValueError("a rep's or manager's key cannot carry an admin scope")
        return self


def key_id(key: str) -> str:
    """How logs and errors name an API key: a prefix of its SHA-256 digest, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


_GRANT: TypeAdapter[list[str] | ApiKeyGrant] = TypeAdapter(list[str] | ApiKeyGrant)


class Settings(BaseSettings):
    # Settings hold keys and passwords: a validation error names the field, never its value.
    model_config = SettingsConfigDict(
        env_prefix="SALESOPS_", extra="ignore", hide_input_in_errors=True
    )

    environment: str = "development"
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    data_dir: Path = Path(".salesops")

    api_keys: dict[str, list[str] | ApiKeyGrant] = Field(
        default_factory=dict,
        description="API key -> scopes, or -> {scopes, sources, rep_id | manager_id}. The dev "
        "stack adds its admin key here.",
    )
    dev_api_key: SecretStr | None = None
    secrets_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Fernet keys (JSON list) sealing CRM secrets at rest; the first seals",
    )
    allow_unsealed_secrets: bool = Field(
        False, description="Let production run without SALESOPS_SECRETS_KEYS (secrets in clear)"
    )

    intake_max_events: int = Field(1000, ge=1)
    intake_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    api_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Body cap of every key-protected route but the intake, enforced while "
        "the body streams in (the intake has SALESOPS_INTAKE_MAX_BYTES, webhooks their own)",
    )
    public_base_url: str | None = Field(
        None,
        description="The base URL CRMs call (scheme://host[:port]), when a proxy rewrites it; "
        "HubSpot signs the URL it called",
    )
    intake_writers: int = Field(2, ge=1, description="Concurrent group-commit transactions")
    event_max_future_seconds: float = Field(
        MAX_FUTURE.total_seconds(),
        ge=0,
        le=366 * 86400,
        description="How far an event's time may lie ahead of our clock before it is refused",
    )
    future_replay_seconds: float = Field(
        60,
        gt=0,
        description="How often CRM changes parked as dated in the future are tried again",
    )
    merge_sweep_seconds: float = Field(
        5,
        gt=0,
        description="How often the pipeline API looks again for deals stored on an account "
        "while it was being merged",
    )
    merge_sweep_window_seconds: float = Field(
        600,
        ge=60,
        description="How long after a merge is recorded the sweep looks for its deals: longer "
        "than a webhook takes from reading the merges to storing its events",
    )

    outbound_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (fnmatch patterns) re-syncs may call beside each CRM's own domains: "
        "sandboxes, self-hosted instances",
    )
    outbound_allow_loopback: bool = Field(
        False, description="Development and tests only: allow CRM calls to 127.0.0.1 / ::1"
    )
    outbound_max_response_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest CRM answer a re-sync reads"
    )
    event_max_bytes: int = Field(
        960 * 1024,
        ge=1024,
        le=1024 * 1024 - 4096,
        description="Largest event (as a Kafka record) intake stores; it must stay below the "
        "relay producer's max_request_size (aiokafka's 1 MiB), or the relay cannot send it",
    )
    resync_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="A running re-sync job whose worker has not renewed it for this long is "
        "taken up by another (its process died)",
    )

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
    broker_wedged_seconds: float = Field(
        30.0,
        gt=0,
        description="How long publishing must have kept failing, too, before a partition "
        "counts as wedged; also the grace period of a new broker incarnation",
    )
    embedded_broker_restart_file: Path | None = Field(
        None,
        description="Set by `salesops dev`: where the relay asks the embedded broker's "
        "supervisor for a new broker when a partition is wedged",
    )

    consumer_max_records: int = Field(500, ge=1)
    db_pool_size: int = Field(10, ge=1)

    summary_check_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the forecast worker brings its metrics summary (stage visits, "
        "creations) up to date with the deals; a metrics or inspection request also does",
    )
    snapshot_check_seconds: float = Field(
        60.0,
        gt=0,
        description="How often the forecast worker looks for due forecast snapshots",
    )
    snapshot_weekday: int = Field(
        0, ge=0, le=6, description="The weekday of the weekly snapshot, 00:00 UTC (0 = Monday)"
    )
    snapshot_period_kinds: tuple[Literal["month", "quarter", "year"], ...] = Field(
        ("quarter",),
        description="The kinds of period snapshotted weekly and at their end (fiscal calendar "
        "from the forecast configuration)",
    )
    snapshot_catch_up_days: int = Field(
        35,
        ge=1,
        le=400,
        description="How far back a (re)started worker takes scheduled snapshots it missed",
    )
    snapshot_settle_seconds: float = Field(
        300.0,
        ge=0,
        description="How long after a scheduled snapshot's instant the worker waits before "
        "taking it, so events of before the instant still on their way (relay backlog) "
        "are applied first",
    )

    comp_recalc_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often the comp recalculation looks for dirty reps when no wake-up "
        "came: a fallback, since the transaction that marks a rep notifies it on commit",
    )
    comp_recalc_round_seconds: float = Field(
        0.5,
        gt=0,
        description="About the longest one recalculation round may work before it commits: "
        "a cap on how many dirty reps a round takes at the last round's pace, so a won "
        "deal never waits behind a long batch (a thin stream makes rounds of one rep)",
    )
    comp_simulate_processes: int = Field(
        1,
        ge=1,
        description="Worker processes a stored-deals simulation fans its rep chunks out to "
        "(each reads its chunk on a connection of its own), started with the service; 1 runs "
        "them in the API process",
    )

    won_stages: tuple[str, ...] = DEFAULT_WON_STAGES
    lost_stages: tuple[str, ...] = DEFAULT_LOST_STAGES

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _grants(cls, value: Any) -> Any:
        """Each key's grant, an error naming the key by `key_id`: pydantic's own would put
        the key itself in the error's location, and so in the start-up log."""
        if not isinstance(value, dict):
            return value
        grants: dict[str, list[str] | ApiKeyGrant] = {}
        for key, grant in value.items():
            try:
                grants[key] = _GRANT.validate_python(grant)
            except ValidationError as exc:
                reasons = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'][1:]) or 'grant'}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)
                )
                raise ValueError(
                    f"the grant of API key {key_id(str(key))} (SHA-256 prefix) is invalid: "
                    "a list of scopes, or {scopes, sources}. " + reasons
                ) from None
        return grants

    @field_validator("environment")
    @classmethod
    def _environment_name(cls, value: str) -> str:
        """`Production` is production: a typo in case must not open the service."""
        return value.strip().lower()

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
        if self.environment != "production":
            return self
        if not self.api_keys:
            raise ValueError("SALESOPS_API_KEYS must be set in production; no key means no access")
        if not self.secrets_keys and not self.allow_unsealed_secrets:
            raise ValueError(
                "SALESOPS_SECRETS_KEYS must be set in production, so CRM secrets are sealed at "
                "rest (`salesops secrets key` makes one); SALESOPS_ALLOW_UNSEALED_SECRETS=true "
                "runs without"
            )
        if self.outbound_allow_loopback:
            raise ValueError(
                "SALESOPS_OUTBOUND_ALLOW_LOOPBACK is for development and tests; in production "
                "CRM calls never go to this host"
            )
        for number, key in enumerate(self.secrets_keys, start=1):
            try:
                Fernet(key.get_secret_value().encode())
            except ValueError:
                raise ValueError(
                    f"SALESOPS_SECRETS_KEYS: key {number} is not a Fernet key (32 url-safe "
                    "base64 bytes; `salesops secrets key` makes one)"
                ) from None
        return self

    @property
    def event_max_future(self) -> timedelta:
        return timedelta(seconds=self.event_max_future_seconds)

    @property
    def merge_sweep_window(self) -> timedelta:
        return timedelta(seconds=self.merge_sweep_window_seconds)

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
