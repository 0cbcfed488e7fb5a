"""HubSpot's REST API (CRM v3 objects): deals and engagements read back for a re-sync.

GET /crm/v3/objects/deals/{id}?properties=...&associations=companies
GET /crm/v3/objects/deals?limit=100&after=...  (next page: paging.next.after)
GET /crm/v3/objects/{calls|emails|meetings|tasks|notes}/{id}?associations=deals
Authorization: Bearer <private app / OAuth token>
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from services.pipeline_api.crm.changes import ActivityChange, ActivityKind, DealChange
from services.pipeline_api.crm.credentials import Credentials
from services.pipeline_api.crm.http import (
    CrmResponseError,
    RetryPolicy,
    Sleep,
    as_dict,
    as_list,
    number_header,
)
from services.pipeline_api.crm.hubspot.webhook import property_field
from services.pipeline_api.crm.resync import RestClient, activity_key, read_deal, resync_change
from services.pipeline_api.crm.values import (
    decimal_text,
    id_text,
    instant,
)

# HubSpot returns only the properties asked for (plus a few defaults).
HUBSPOT_PROPERTIES = (
    "dealname",
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "hubspot_owner_id",
    "closedate",
    "createdate",
    "dealtype",
    "hs_forecast_category",
    "hs_is_closed",
    "hs_is_closed_won",
    "hs_lastmodifieddate",
)
_HUBSPOT_BOOKKEEPING = {"hs_object_id", "hs_lastmodifieddate", "hs_is_closed", "hs_is_closed_won"}


def hubspot_change(record: dict[str, Any], *, companies_requested: bool = True) -> DealChange:
    """A HubSpot CRM v3 deal object (`id`, `properties` all strings, `updatedAt`,
    `associations.companies` when asked for) as a DealChange. The account is the primary
    company; with `companies_requested`, no primary company means no account (None)."""
    crm_id = id_text(record.get("id"))
    if crm_id is None:
        raise CrmResponseError("HubSpot deal without an id")
    props = record.get("properties")
    if not isinstance(props, dict):
        raise CrmResponseError(f"HubSpot deal {crm_id} has no properties object")

    def build() -> DealChange:
        modified = props.get("hs_lastmodifieddate") or record.get("updatedAt")
        if not modified:
            raise ValueError("no hs_lastmodifieddate or updatedAt")
        fields: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for name, value in props.items():
            mapped = property_field(name, None if value is None else str(value))
            if mapped is not None:
                fields[mapped[0]] = mapped[1]
            elif name not in _HUBSPOT_BOOKKEEPING:
                properties[name] = value
        if "amount" in fields and fields["amount"] is not None:
            fields["amount"] = decimal_text(fields["amount"], "amount")
        won, closed = props.get("hs_is_closed_won"), props.get("hs_is_closed")
        if won == "true":
            fields["status"] = "won"
        elif closed == "true":
            fields["status"] = "lost"
        elif closed == "false":
            fields["status"] = "open"
        if companies_requested:
            # HubSpot leaves `associations` out when the deal has none of the kind asked for.
            associations = record.get("associations")
            companies = associations.get("companies") if isinstance(associations, dict) else None
            fields["account_id"] = _hubspot_primary_company(companies)
        return resync_change(crm_id, instant(modified, "hs_lastmodifieddate"), fields, properties)

    return read_deal("HubSpot", crm_id, build)


def _hubspot_primary_company(companies: Any) -> str | None:
    """The primary company (association type `deal_to_company`), as the webhook parser
    takes only the primary association for the account."""
    results = companies.get("results") if isinstance(companies, dict) else None
    for item in results or []:
        if isinstance(item, dict) and item.get("type") == "deal_to_company":
            return id_text(item.get("id"))
    return None


HUBSPOT_ENGAGEMENT_OBJECTS: dict[str, str] = {
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "task": "tasks",
    "note": "notes",
}
HUBSPOT_ENGAGEMENT_TITLES = (
    "hs_call_title",
    "hs_email_subject",
    "hs_meeting_title",
    "hs_task_subject",
    "hs_note_body",
)


def hubspot_activity(record: dict[str, Any], kind: ActivityKind) -> ActivityChange:
    """A HubSpot engagement object (call, email, meeting, task, note) with its deal
    association as an ActivityChange linked to deal and owner."""
    crm_id = id_text(record.get("id"))
    props = record.get("properties")
    if crm_id is None or not isinstance(props, dict):
        raise CrmResponseError("HubSpot engagement without an id or properties")
    modified = props.get("hs_lastmodifieddate") or record.get("updatedAt")
    happened = props.get("hs_timestamp") or props.get("hs_createdate") or modified
    if not modified or not happened:
        raise CrmResponseError(f"HubSpot engagement {crm_id} has no timestamps")
    associations = record.get("associations")
    deals = associations.get("deals") if isinstance(associations, dict) else None
    results = deals.get("results") if isinstance(deals, dict) else None
    deal_ids = [id_text(r.get("id")) for r in results or [] if isinstance(r, dict)]
    changed = instant(modified, "hs_lastmodifieddate")
    return ActivityChange(
        crm_id=crm_id,
        event_key=activity_key(crm_id, changed),
        occurred_at=instant(happened, "hs_timestamp"),
        changed_at=changed,
        kind=kind,
        deal_crm_id=next((d for d in deal_ids if d), None),
        rep_crm_id=id_text(props.get("hubspot_owner_id")),
        properties={k: props[k] for k in HUBSPOT_ENGAGEMENT_TITLES if props.get(k)},
    )


class HubSpotClient(RestClient):
    """HubSpot CRM v3 objects API. `extra_properties` are asked for beside the standard
    deal properties (custom ones to keep); `page_size` is at most 100."""

    crm = "HubSpot"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        extra_properties: Sequence[str] = (),
        page_size: int = 100,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        if not 1 <= page_size <= 100:
            raise ValueError("HubSpot pages hold 1 to 100 objects")
        self.page_size = page_size
        self.properties = ",".join(dict.fromkeys([*HUBSPOT_PROPERTIES, *extra_properties]))

    def _quota_pause(self, response: httpx.Response) -> float | None:
        if number_header(response, "X-HubSpot-RateLimit-Remaining") == 0:
            interval = number_header(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
            return interval / 1000 if interval and interval > 0 else 10.0
        if number_header(response, "X-HubSpot-RateLimit-Secondly-Remaining") == 0:
            return 1.0
        return None

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        body = await self._get_json(
            f"{self.base_url}/crm/v3/objects/deals/{quote(crm_id, safe='')}",
            {"properties": self.properties, "associations": "companies"},
            not_found_ok=True,
        )
        if body is None:
            return None
        record = as_dict(body, self.crm, f"deal {crm_id}")
        if record.get("archived") is True:
            return None
        return hubspot_change(record)

    async def fetch_activity(self, kind: ActivityKind, crm_id: str) -> ActivityChange | None:
        """An engagement with its deal association; None when HubSpot no longer has it."""
        objects = HUBSPOT_ENGAGEMENT_OBJECTS[kind]
        body = await self._get_json(
            f"{self.base_url}/crm/v3/objects/{objects}/{quote(crm_id, safe='')}",
            {
                "properties": ",".join(
                    (
                        "hs_timestamp",
                        "hs_lastmodifieddate",
                        "hubspot_owner_id",
                        *HUBSPOT_ENGAGEMENT_TITLES,
                    )
                ),
                "associations": "deals",
            },
            not_found_ok=True,
        )
        if body is None:
            return None
        return hubspot_activity(as_dict(body, self.crm, f"{kind} {crm_id}"), kind)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {
                "limit": str(self.page_size),
                "properties": self.properties,
                "associations": "companies",
            }
            if after is not None:
                params["after"] = after
            body = as_dict(
                await self._get_json(f"{self.base_url}/crm/v3/objects/deals", params),
                self.crm,
                "deal list",
            )
            for record in as_list(body.get("results"), self.crm, "deal list results"):
                yield hubspot_change(as_dict(record, self.crm, "deal"))
            paging = body.get("paging")
            nxt = paging.get("next") if isinstance(paging, dict) else None
            after = id_text(nxt.get("after")) if isinstance(nxt, dict) else None
            if after is None:
                return
            if after in seen:
                raise CrmResponseError("HubSpot paging came back to a cursor it gave before")
            seen.add(after)
