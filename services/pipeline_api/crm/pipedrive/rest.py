"""Pipedrive's REST API (v2 deals), read back for a re-sync.

GET /api/v2/deals/{id}
GET /api/v2/deals?limit=500&cursor=...  (next page: additional_data.next_cursor)
x-api-token: <API token>
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.pipeline_api.crm.changes import DealChange
from services.pipeline_api.crm.credentials import Credentials
from services.pipeline_api.crm.http import (
    CrmResponseError,
    RetryPolicy,
    Sleep,
    as_dict,
    as_list,
    number_header,
)
from services.pipeline_api.crm.resync import RestClient, read_deal, resync_change
from services.pipeline_api.crm.values import (
    decimal_text,
    id_text,
    instant,
    iso_date,
    iso_time,
)

_PIPEDRIVE_CONSUMED = {
    "id",
    "title",
    "value",
    "currency",
    "stage_id",
    "pipeline_id",
    "owner_id",
    "org_id",
    "expected_close_date",
    "add_time",
    "update_time",
    "status",
    "custom_fields",
}


def pipedrive_change(record: dict[str, Any]) -> DealChange:
    """A Pipedrive API v2 deal as a DealChange; custom fields land in `properties` under
    their 40-hex-character keys, beside the other deal attributes."""
    crm_id = id_text(record.get("id"))
    if crm_id is None:
        raise CrmResponseError("Pipedrive deal without an id")

    def build() -> DealChange:
        modified = record.get("update_time") or record.get("add_time")
        if not modified:
            raise ValueError("no update_time")
        fields: dict[str, Any] = {}
        renames = {
            "stage_id": "stage",
            "pipeline_id": "pipeline",
            "owner_id": "owner_id",
            "org_id": "account_id",
        }
        for raw, canonical in renames.items():
            if raw in record:
                fields[canonical] = id_text(record[raw])
        if "title" in record:
            fields["name"] = record["title"]
        if "value" in record:
            fields["amount"] = decimal_text(record["value"], "value")
        if "currency" in record:
            fields["currency"] = record["currency"] or None
        if "expected_close_date" in record:
            fields["close_date"] = iso_date(record["expected_close_date"], "expected_close_date")
        if "add_time" in record:
            fields["created_at"] = iso_time(record["add_time"], "add_time")
        if record.get("status") in ("open", "won", "lost"):
            fields["status"] = record["status"]
        properties = {k: v for k, v in record.items() if k not in _PIPEDRIVE_CONSUMED}
        custom = record.get("custom_fields")
        if isinstance(custom, dict):
            properties.update(custom)
        return resync_change(crm_id, instant(modified, "update_time"), fields, properties)

    return read_deal("Pipedrive", crm_id, build)


class PipedriveClient(RestClient):
    """Pipedrive API v2 deals, authenticated by the `x-api-token` header. `page_size` is
    at most 500. A deal Pipedrive reports deleted counts as not found."""

    crm = "Pipedrive"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        page_size: int = 500,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        if not 1 <= page_size <= 500:
            raise ValueError("Pipedrive pages hold 1 to 500 deals")
        self.page_size = page_size

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"x-api-token": token}

    def _quota_pause(self, response: httpx.Response) -> float | None:
        if number_header(response, "x-ratelimit-remaining") == 0:
            reset = number_header(response, "x-ratelimit-reset")
            return reset if reset and reset > 0 else 2.0
        return None

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        if not crm_id.isdigit():
            raise ValueError(f"Pipedrive deal ids are integers, not {crm_id!r}")
        body = await self._get_json(f"{self.base_url}/api/v2/deals/{crm_id}", not_found_ok=True)
        if body is None:
            return None
        data = as_dict(body, self.crm, f"deal {crm_id}").get("data")
        if data is None:
            return None
        record = as_dict(data, self.crm, f"deal {crm_id} data")
        if record.get("is_deleted") is True or record.get("status") == "deleted":
            return None
        return pipedrive_change(record)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(self.page_size)}
            if cursor is not None:
                params["cursor"] = cursor
            body = as_dict(
                await self._get_json(f"{self.base_url}/api/v2/deals", params),
                self.crm,
                "deal list",
            )
            for record in as_list(body.get("data") or [], self.crm, "deal list data"):
                deal = as_dict(record, self.crm, "deal")
                if deal.get("is_deleted") is True or deal.get("status") == "deleted":
                    continue
                yield pipedrive_change(deal)
            extra = body.get("additional_data")
            cursor = id_text(extra.get("next_cursor")) if isinstance(extra, dict) else None
            if cursor is None:
                return
            if cursor in seen:
                raise CrmResponseError("Pipedrive paging came back to a cursor it gave before")
            seen.add(cursor)
