"""The CRM registry is the one place CRM kinds come from: source kinds, archived delivery
kinds, webhook routes and API hosts all follow it, so a new CRM is one package and one
registry line."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import ValidationError

from services.pipeline_api.app import create_app
from services.pipeline_api.crm import registry
from services.pipeline_api.crm.adapter import CrmAdapter
from services.pipeline_api.crm.outbound import OutboundPolicy, OutboundRefused
from services.pipeline_api.sources.schemas import SourceIn, SourceKind
from services.pipeline_api.webhooks.deliveries import DeliveryKind, parse_delivery

ADAPTERS = list(registry.ADAPTERS.items())
ENDPOINTS = [(e.delivery_kind, e) for e in registry.WEBHOOKS]


def _webhook_operations() -> dict[str, dict[str, Any]]:
    """The app's documented webhook paths and their operations by method."""
    paths: dict[str, dict[str, Any]] = create_app().openapi()["paths"]
    return {path: ops for path, ops in paths.items() if path.startswith("/v1/webhooks/")}


@pytest.mark.parametrize(("kind", "adapter"), ADAPTERS)
def test_each_adapter_is_registered_under_its_own_kind(kind: str, adapter: CrmAdapter) -> None:
    assert adapter.kind == kind
    assert adapter.webhooks, "a CRM without a webhook endpoint delivers nothing"
    assert adapter.api_hosts


def test_source_kinds_are_the_registry_kinds_in_order() -> None:
    assert get_args(SourceKind) == registry.KINDS == tuple(registry.ADAPTERS)


@pytest.mark.parametrize("kind", registry.KINDS)
def test_a_source_of_each_kind_is_accepted(kind: str) -> None:
    assert SourceIn.model_validate({"id": "s", "kind": kind, "account_id": "1"}).kind == kind


def test_a_source_of_an_unregistered_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="literal_error"):
        SourceIn.model_validate({"id": "s", "kind": "zoho", "account_id": "1"})


def test_archived_delivery_kinds_are_the_endpoints_delivery_kinds() -> None:
    assert get_args(DeliveryKind) == registry.DELIVERY_KINDS
    assert set(registry.DELIVERY_KINDS) == {e.delivery_kind for e in registry.WEBHOOKS}
    assert len(registry.DELIVERY_KINDS) == len(registry.WEBHOOKS), "one kind per endpoint"


@pytest.mark.parametrize(("delivery_kind", "endpoint"), ENDPOINTS)
def test_each_archived_delivery_kind_is_replayed_by_its_endpoint(
    delivery_kind: str, endpoint: object
) -> None:
    assert registry.endpoint_for_delivery(delivery_kind) is endpoint


def test_a_delivery_of_an_unknown_kind_has_no_parser() -> None:
    source = SourceIn(id="s", kind=registry.KINDS[0], account_id="1")
    with pytest.raises(ValueError, match="no parser for deliveries of kind 'zoho'"):
        parse_delivery("zoho", source=source, body=b"{}")


def test_the_app_serves_exactly_the_adapters_webhook_endpoints() -> None:
    served = _webhook_operations()
    assert list(served) == [f"/v1/webhooks{e.path}" for e in registry.WEBHOOKS]
    for endpoint in registry.WEBHOOKS:
        operations = served[f"/v1/webhooks{endpoint.path}"]
        assert set(operations) == {"post"}
        post = operations["post"]
        assert post["operationId"].startswith(endpoint.name)
        assert post["summary"] == endpoint.summary
        assert post.get("description") == endpoint.description


@pytest.mark.parametrize(("kind", "adapter"), ADAPTERS)
def test_outbound_calls_go_to_a_kinds_own_api_hosts_only(kind: str, adapter: CrmAdapter) -> None:
    policy = OutboundPolicy()
    own = adapter.api_hosts[-1].replace("*", "eu1")
    assert policy.check_url(f"https://{own}/x", kind).host == own
    for other, other_adapter in ADAPTERS:
        if other != kind and not set(other_adapter.api_hosts) & set(adapter.api_hosts):
            with pytest.raises(OutboundRefused):
                policy.check_url(f"https://{own}/x", other)


@pytest.mark.parametrize("kind", registry.KINDS)
def test_resync_needs_come_from_the_adapter(kind: str) -> None:
    bare = SourceIn(id="s", kind=kind, account_id="1")
    assert registry.resync_missing(bare) == registry.ADAPTERS[kind].resync_missing(bare)
    assert registry.resync_missing(bare)[0] == "api_base_url"
    ready = SourceIn.model_validate(
        {
            "id": "s",
            "kind": kind,
            "account_id": "1",
            "api_base_url": "https://example.invalid",
            "api_token": "t",
        }
    )
    assert registry.resync_missing(ready) == []
