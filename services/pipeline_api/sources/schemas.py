"""A source: one connected CRM account, its secrets and its mapping.

Secrets are `SecretStr` so they never appear in reprs, logs or API answers; two may be
active at once so a CRM's secret can be rotated without rejecting deliveries meanwhile.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from services.pipeline_api.crm import registry
from shared.events import DealStatus, DealType, ForecastCategory
from shared.money import CurrencyCode

if TYPE_CHECKING:
    SourceKind = str
else:
    SourceKind = Literal[registry.KINDS]
    """One per CRM adapter (`crm/registry.py`); an enum in the API."""
HubSpotSignature = Literal["v1", "v2", "v3"]


class StageMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(min_length=1, description="Our stage name")
    pipeline: str | None = Field(None, description="Our pipeline name")
    forecast_category: ForecastCategory | None = None
    status: DealStatus | None = Field(None, description="open / won / lost, when not derivable")


class Mapping(BaseModel):
    """How a CRM's ids translate into ours. Keys are the CRM's ids as strings."""

    model_config = ConfigDict(extra="forbid")

    stages: dict[str, StageMapping] = Field(
        default_factory=dict,
        description="CRM stage id -> our stage (HubSpot dealstage values are internal ids)",
    )
    pipelines: dict[str, str] = Field(default_factory=dict, description="CRM pipeline id -> ours")
    owners: dict[str, str] = Field(default_factory=dict, description="CRM user/owner id -> rep id")
    deal_types: dict[str, DealType] = Field(default_factory=dict)
    default_currency: CurrencyCode = "USD"
    multi_currency: bool = Field(
        False,
        description="The CRM account has several currencies: an amount change without a "
        "currency then keeps the deal's currency instead of taking the default",
    )
    keep_properties: list[str] = Field(
        default_factory=list, description="CRM custom property names (or Pipedrive hashes) to keep"
    )

    @field_validator("stages", "pipelines", "owners", "deal_types", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        """YAML turns numeric ids into ints; CRM ids are compared as strings."""
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class SourceSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: SecretStr | None = Field(None, description="Signing secret / password in use")
    previous: SecretStr | None = Field(None, description="Still accepted during rotation")
    basic_user: str | None = Field(None, description="Pipedrive HTTP Basic user")

    def candidates(self) -> list[str]:
        return [s.get_secret_value() for s in (self.current, self.previous) if s is not None]


SALESFORCE_TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"


class SalesforceOAuth(BaseModel):
    """A Salesforce connected app's refresh token, for re-syncs that outlive a session.

    Salesforce access tokens expire with the org's session timeout (two hours by default),
    so a fixed `api_token` stops working; with this set, re-syncs get access tokens from
    the OAuth 2.0 refresh token flow and store the new refresh token when the connected
    app rotates it.
    """

    model_config = ConfigDict(extra="forbid")

    token_url: str = Field(
        SALESFORCE_TOKEN_URL,
        description="The token endpoint: login.salesforce.com, test.salesforce.com for "
        "sandboxes, or the org's My Domain",
    )
    client_id: str = Field(min_length=1, description="The connected app's consumer key")
    client_secret: SecretStr | None = Field(None, description="Its consumer secret")
    refresh_token: SecretStr | None = Field(
        None, description="Write-only; a PUT without it keeps the stored one"
    )


class SourceIn(BaseModel):
    """A source as an operator declares it (API body or one YAML entry)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Our slug for it")
    kind: SourceKind
    account_id: str = Field(
        min_length=1,
        description="HubSpot portalId, Salesforce OrganizationId, Pipedrive company_id",
    )
    secrets: SourceSecrets = Field(default_factory=SourceSecrets)
    hubspot_signature: HubSpotSignature = "v3"
    api_base_url: str | None = Field(None, description="CRM REST API base, for re-sync")
    api_token: SecretStr | None = Field(None, description="CRM REST API token, for re-sync")
    mapping: Mapping = Field(default_factory=Mapping)
    own_client_ids: list[str] = Field(
        default_factory=list,
        description="Salesforce: API client ids whose changes are ours (changeOrigin), skipped",
    )
    cdc_field_lists: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Salesforce: entity -> Avro field list in schema order, to decode "
        "Pub/Sub bitmap changedFields",
    )
    oauth: SalesforceOAuth | None = Field(
        None, description="Salesforce: refresh token flow for re-sync, instead of api_token"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_its_crm(self) -> SourceIn:
        """Settings only some CRMs use (`oauth`, ...) are checked by the CRM's adapter."""
        registry.adapter_for(self.kind).check_source(self)
        return self


class SourceOut(BaseModel):
    """A source as the API shows it: never its secrets, only whether they are set."""

    id: str
    kind: SourceKind
    account_id: str
    hubspot_signature: HubSpotSignature
    api_base_url: str | None
    oauth_token_url: str | None
    oauth_client_id: str | None
    mapping: Mapping
    enabled: bool
    secrets_set: list[str]

    @classmethod
    def of(cls, source: SourceIn) -> SourceOut:
        s, oauth = source.secrets, source.oauth
        names = [
            n
            for n, v in (
                ("current", s.current),
                ("previous", s.previous),
                ("api_token", source.api_token),
                ("oauth_client_secret", oauth.client_secret if oauth else None),
                ("oauth_refresh_token", oauth.refresh_token if oauth else None),
            )
            if v is not None
        ]
        return cls(
            id=source.id,
            kind=source.kind,
            account_id=source.account_id,
            hubspot_signature=source.hubspot_signature,
            api_base_url=source.api_base_url,
            oauth_token_url=oauth.token_url if oauth else None,
            oauth_client_id=oauth.client_id if oauth else None,
            mapping=source.mapping,
            enabled=source.enabled,
            secrets_set=names,
        )


SECRET_PATHS = (
    ("secrets", "current"),
    ("secrets", "previous"),
    ("api_token",),
    ("oauth", "client_secret"),
    ("oauth", "refresh_token"),
)
"""Where a stored source's config holds secrets (sealed at rest when keys are set)."""


class ResyncIn(BaseModel):
    deal_ids: list[str] = Field(
        default_factory=list, description="CRM deal ids; empty means every deal of the source"
    )


class ResyncJobOut(BaseModel):
    id: int
    source_id: str
    crm_ids: list[str]
    reason: str
    status: str
    progress: int
    error: str | None
    created_at: datetime
    updated_at: datetime


def secret_values(source: SourceIn, seal: Callable[[str], str] = str) -> dict[str, Any]:
    """The source as stored: secrets in clear, or as `seal` makes them."""
    data = source.model_dump(mode="json")
    data["secrets"] = {
        "current": _clear(source.secrets.current),
        "previous": _clear(source.secrets.previous),
        "basic_user": source.secrets.basic_user,
    }
    data["api_token"] = _clear(source.api_token)
    if source.oauth is not None:
        data["oauth"] |= {
            "client_secret": _clear(source.oauth.client_secret),
            "refresh_token": _clear(source.oauth.refresh_token),
        }
    return _map_secrets(data, seal)


def open_values(config: dict[str, Any], unseal: Callable[[str], str]) -> dict[str, Any]:
    """A stored config with each secret passed through `unseal` (a copy): opened, ready for
    `SourceIn.model_validate`, or re-sealed under another key."""
    return _map_secrets(copy.deepcopy(config), unseal)


def _map_secrets(data: dict[str, Any], f: Callable[[str], str]) -> dict[str, Any]:
    for path in SECRET_PATHS:
        holder: Any = data
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and isinstance(holder.get(path[-1]), str):
            holder[path[-1]] = f(holder[path[-1]])
    return data


def _clear(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def load_yaml(path: Path) -> list[SourceIn]:
    """Read `sources:` from a YAML file (see deploy/sources.example.yaml)."""
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("sources", []) if isinstance(document, dict) else []
    return [SourceIn.model_validate(entry) for entry in entries]
