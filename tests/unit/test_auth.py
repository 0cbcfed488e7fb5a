"""API keys: scopes, source binding and the webhook namespace, and how intake applies them
to each posted event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.pipeline_api.events.intake import admit
from shared.auth import ApiKeys, Principal, in_webhook_namespace
from shared.events import EventInFuture, EventRejected
from shared.settings import ApiKeyGrant

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
KEYS = ApiKeys(
    {
        "old-form": ["events:write"],
        "bound": ApiKeyGrant(scopes=["events:write"], sources=["app://billing", "app://shop/*"]),
        "admin": ["admin"],
    }
)


def principal(key: str) -> Principal:
    found = KEYS.lookup(key)
    assert found is not None
    return found


def event(source: str, time: datetime = NOW) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": source,
        "type": "com.salesops.deal.deleted.v1",
        "time": time.isoformat(),
        "data": {"deal_id": "d-1"},
    }


def test_the_old_form_is_unbound_and_keeps_its_scopes() -> None:
    old = principal("old-form")
    assert old.sources is None
    assert old.allows("events:write")
    assert not old.allows("events:read")
    assert old.may_write_source("anything://at/all")


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("app://billing", True),
        ("app://shop/eu", True),
        ("app://shop/eu/web", True),
        ("app://billing/extra", False),
        ("app://shop", False),
        ("APP://billing", False),
    ],
)
def test_a_bound_key_writes_only_matching_sources(source: str, allowed: bool) -> None:
    assert principal("bound").may_write_source(source) is allowed
    assert principal("bound").covers(source) is allowed


@pytest.mark.parametrize("source", ["crm://hubspot/48975575", "CRM://hubspot/1", "Crm://x"])
@pytest.mark.parametrize("key", ["old-form", "admin"])
def test_no_key_writes_the_webhook_namespace(source: str, key: str) -> None:
    assert not principal(key).may_write_source(source)
    with pytest.raises(EventRejected, match=r"crm:// namespace"):
        admit(event(source), principal(key), max_future=timedelta(minutes=5), now=NOW)


def test_admit_names_the_source_a_bound_key_may_not_write() -> None:
    with pytest.raises(EventRejected) as refused:
        admit(event("app://crm-export"), principal("bound"), max_future=timedelta(0), now=NOW)
    assert refused.value.reason == "source: this API key may not write source 'app://crm-export'"
    accepted = admit(event("app://billing"), principal("bound"), max_future=timedelta(0), now=NOW)
    assert accepted.envelope.source == "app://billing"


def test_admit_refuses_an_event_beyond_the_configured_skew() -> None:
    ahead = event("app://billing", NOW + timedelta(minutes=2))
    with pytest.raises(EventInFuture):
        admit(ahead, principal("admin"), max_future=timedelta(minutes=1), now=NOW)
    assert admit(ahead, principal("admin"), max_future=timedelta(minutes=3), now=NOW)


def crm_event(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {**event("app://billing"), "type": f"com.salesops.{type_}.v1", "data": data}


@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        ("deal.deleted", {"deal_id": "hubspot:48975575:123"}, "deal_id"),
        ("deal.deleted", {"deal_id": "d-1", "merged_into": "Salesforce:00D:006"}, "merged_into"),
        ("deal.updated", {"deal_id": "d-1", "account_id": "pipedrive:1:7"}, "account_id"),
        (
            "activity.logged",
            {"activity_id": "hubspot:1:9", "kind": "call", "occurred_at": NOW.isoformat()},
            "activity_id",
        ),
        ("activity.deleted", {"activity_id": " pipedrive:1:9"}, "activity_id"),
    ],
)
@pytest.mark.parametrize("key", ["bound", "admin"])
def test_no_key_writes_a_crm_qualified_id(
    type_: str, data: dict[str, Any], field: str, key: str
) -> None:
    with pytest.raises(EventRejected) as refused:
        admit(crm_event(type_, data), principal(key), max_future=timedelta(0), now=NOW)
    assert refused.value.reason.startswith(f"data.{field}: {data[field]!r} is a CRM's id")


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        (
            "deal.cancelled",
            {"deal_id": "hubspot:48975575:123", "cancelled_at": NOW.isoformat(), "reason": "churn"},
        ),
        (
            "invoice.paid",
            {
                "invoice_id": "inv-1",
                "deal_id": "salesforce:00D:006",
                "amount": "100",
                "currency": "USD",
                "paid_at": NOW.isoformat(),
            },
        ),
    ],
)
def test_a_billing_system_may_name_a_crm_deal_it_cancels_or_was_paid_for(
    type_: str, data: dict[str, Any]
) -> None:
    admitted = admit(crm_event(type_, data), principal("bound"), max_future=timedelta(0), now=NOW)
    assert vars(admitted.payload)["deal_id"] == data["deal_id"]


def test_ids_that_merely_contain_a_crm_name_are_admitted() -> None:
    data = {"deal_id": "deal:hubspot:1", "account_id": "hubspot-import"}
    admitted = admit(
        crm_event("deal.updated", data), principal("bound"), max_future=timedelta(0), now=NOW
    )
    assert admitted.subject == "deal:hubspot:1"


@pytest.mark.parametrize(
    "source",
    [
        "%63rm://hubspot/1",
        "%2563rm://hubspot/1",
        "\uff43\uff52\uff4d://hubspot/1",
        "c\u200brm://hubspot/1",
        "crm%3A//hubspot/1",
        "cRm:hubspot",
    ],
)
def test_a_look_alike_of_the_webhook_namespace_is_in_it(source: str) -> None:
    assert in_webhook_namespace(source)
    with pytest.raises(EventRejected, match=r"crm:// namespace|control or format"):
        admit(event(source), principal("admin"), max_future=timedelta(minutes=5), now=NOW)


@pytest.mark.parametrize(
    "source", [" crm://hubspot/1", "app://billing ", "app://bil\u200bling", "app://a\x07b"]
)
def test_a_source_that_would_show_as_another_is_refused(source: str) -> None:
    with pytest.raises(EventRejected, match=r"whitespace or a control or format character"):
        admit(event(source), principal("admin"), max_future=timedelta(minutes=5), now=NOW)


@pytest.mark.parametrize("source", ["app://crm/1", "crmx://a", "app://x?q=crm://"])
def test_sources_merely_mentioning_crm_are_not_in_the_namespace(source: str) -> None:
    assert admit(event(source), principal("admin"), max_future=timedelta(minutes=5), now=NOW)
