"""Salesforce's REST API: Opportunities, Tasks and Events read back for a re-sync.

GET /services/data/v60.0/sobjects/Opportunity/{id}
GET /services/data/v60.0/query?q=SELECT FIELDS(STANDARD) FROM Opportunity
(next page: nextRecordsUrl until done); Authorization: Bearer <token>
GET /services/data/v60.0/sobjects/{Task|Event}/{id}
GET /services/data/v60.0/query?q=SELECT FIELDS(STANDARD) FROM {Task|Event}
"""

from __future__ import annotations

import asyncio
import logging
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
)
from services.pipeline_api.crm.resync import RestClient, activity_key, read_deal, resync_change
from services.pipeline_api.crm.salesforce.webhook import activity_change, activity_entity
from services.pipeline_api.crm.values import (
    decimal_text,
    id_text,
    instant,
    iso_date,
    iso_time,
    shape,
)

_log = logging.getLogger("salesops.resync")

SALESFORCE_API_VERSION = "v60.0"

SALESFORCE_FORECAST = {
    "Pipeline": "pipeline",
    "Best Case": "best_case",
    "BestCase": "best_case",
    "Commit": "commit",
    "Forecast": "commit",
    "Closed": "closed",
    "Omitted": "omitted",
}


def salesforce_change(record: dict[str, Any]) -> DealChange:
    """A Salesforce Opportunity record (sobject GET or a query row) as a DealChange."""
    crm_id = id_text(record.get("Id"))
    if crm_id is None:
        raise CrmResponseError("Salesforce Opportunity without an Id")

    def build() -> DealChange:
        modified = record.get("LastModifiedDate") or record.get("SystemModstamp")
        if not modified:
            raise ValueError("no LastModifiedDate or SystemModstamp")
        fields: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for name, value in record.items():
            if name in ("attributes", "Id", "LastModifiedDate", "SystemModstamp"):
                continue
            if name == "Name":
                fields["name"] = value
            elif name == "Amount":
                fields["amount"] = decimal_text(value, "Amount")
            elif name == "CurrencyIsoCode":
                fields["currency"] = value or None
            elif name == "StageName":
                fields["stage"] = value or None
            elif name == "OwnerId":
                fields["owner_id"] = id_text(value)
            elif name == "AccountId":
                fields["account_id"] = id_text(value)
            elif name == "CloseDate":
                fields["close_date"] = iso_date(value, "CloseDate")
            elif name == "CreatedDate":
                fields["created_at"] = iso_time(value, "CreatedDate")
            elif name == "Type":
                fields["deal_type"] = value or None
            elif name == "ForecastCategoryName" and value in SALESFORCE_FORECAST:
                fields["forecast_category"] = SALESFORCE_FORECAST[value]
            elif name not in ("IsClosed", "IsWon"):
                properties[name] = value
        if record.get("IsWon") is True:
            fields["status"] = "won"
        elif record.get("IsClosed") is True:
            fields["status"] = "lost"
        elif record.get("IsClosed") is False:
            fields["status"] = "open"
        return resync_change(crm_id, instant(modified, "LastModifiedDate"), fields, properties)

    return read_deal("Salesforce", crm_id, build)


def salesforce_activity(record: dict[str, Any], entity: str) -> ActivityChange:
    """A Task or Event record (sobject GET or a query row) as an ActivityChange, read the
    way its change event is, stamped with its LastModifiedDate."""
    crm_id = id_text(record.get("Id"))
    if crm_id is None:
        raise CrmResponseError(f"Salesforce {entity} without an Id")
    modified = record.get("LastModifiedDate") or record.get("SystemModstamp")
    try:
        changed = instant(modified, "LastModifiedDate")
    except ValueError as exc:
        raise CrmResponseError(f"Salesforce {entity} {crm_id} cannot be read: {exc}") from exc
    values = {k: v for k, v in record.items() if k != "attributes" and v is not None}
    return activity_change(
        entity, crm_id, values, event_key=activity_key(crm_id, changed), changed_at=changed
    )


class SalesforceClient(RestClient):
    """Salesforce REST API on Opportunity. The list query is
    `SELECT FIELDS(STANDARD)[, custom__c...] FROM Opportunity`: every standard field (with
    CurrencyIsoCode in multi-currency orgs) without naming it, so no org lacks a field
    asked for; `extra_fields` ending in `__c` add custom fields. A single GET returns every
    field the token may read."""

    crm = "Salesforce"

    def __init__(
        self,
        base_url: str,
        token: str | Credentials,
        http: httpx.AsyncClient,
        *,
        extra_fields: Sequence[str] = (),
        api_version: str = SALESFORCE_API_VERSION,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, token, http, policy=policy, sleep=sleep, rng=rng)
        self.api_version = api_version
        # Standard fields are in FIELDS(STANDARD) already; naming one twice is an error.
        custom = [f for f in extra_fields if f.lower().endswith("__c")]
        selected = ", ".join(["FIELDS(STANDARD)", *dict.fromkeys(custom)])
        self.soql = f"SELECT {selected} FROM Opportunity"
        self.api_usage: tuple[int, int] | None = None
        """(used, limit) from the last `Sforce-Limit-Info: api-usage=N/M` header."""

    def _refused_for_limit(self, response: httpx.Response) -> bool:
        return response.status_code == 403 and b"REQUEST_LIMIT_EXCEEDED" in response.content

    def _after(self, response: httpx.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info", "")
        for part in info.split(";"):
            name, _, value = part.strip().partition("=")
            used, _, limit = value.partition("/")
            if name == "api-usage" and used.isdigit() and limit.isdigit():
                self.api_usage = (int(used), int(limit))
                if int(limit) and int(used) >= int(limit) * 0.9:
                    _log.warning("Salesforce API usage is at %s of the daily limit", value)

    @property
    def _data(self) -> str:
        return f"{self.base_url}/services/data/{self.api_version}"

    async def fetch_deal(self, crm_id: str) -> DealChange | None:
        body = await self._get_json(
            f"{self._data}/sobjects/Opportunity/{quote(crm_id, safe='')}", not_found_ok=True
        )
        if body is None:
            return None
        return salesforce_change(as_dict(body, self.crm, f"Opportunity {crm_id}"))

    async def fetch_activity(self, kind: ActivityKind, crm_id: str) -> ActivityChange | None:
        """A Task ("meeting": an Event) as it is now; None once Salesforce answers 404 (a
        deleted record: ENTITY_IS_DELETED while in the recycle bin, NOT_FOUND after)."""
        entity = activity_entity(kind)
        body = await self._get_json(
            f"{self._data}/sobjects/{entity}/{quote(crm_id, safe='')}", not_found_ok=True
        )
        if body is None:
            return None
        return salesforce_activity(as_dict(body, self.crm, f"{entity} {crm_id}"), entity)

    async def iter_activities(self, kind: ActivityKind) -> AsyncIterator[ActivityChange]:
        """Every Task ("meeting": every Event), page by page. A query leaves out deleted
        and archived activities, as the UI does."""
        entity = activity_entity(kind)
        async for record in self._query(f"SELECT FIELDS(STANDARD) FROM {entity}"):
            yield salesforce_activity(as_dict(record, self.crm, entity), entity)

    async def iter_deals(self) -> AsyncIterator[DealChange]:
        async for record in self._query(self.soql):
            yield salesforce_change(as_dict(record, self.crm, "Opportunity"))

    async def _query(self, soql: str) -> AsyncIterator[Any]:
        """The records of a SOQL query: one paging loop for deals and activities, so each
        follows nextRecordsUrl only on the instance."""
        url: str = f"{self._data}/query"
        params: dict[str, str] | None = {"q": soql}
        seen: set[str] = set()
        while True:
            body = as_dict(await self._get_json(url, params), self.crm, "query result")
            for record in as_list(body.get("records"), self.crm, "query records"):
                yield record
            next_url = body.get("nextRecordsUrl")
            if body.get("done") is True or not next_url:
                return
            url = self._same_origin(str(next_url))
            if url in seen:
                raise CrmResponseError("Salesforce paging came back to an earlier nextRecordsUrl")
            seen.add(url)
            params = None

    def _same_origin(self, next_url: str) -> str:
        """nextRecordsUrl is a path on the instance; the token goes nowhere else."""
        base = httpx.URL(self.base_url + "/")
        url = base.join(next_url)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise CrmResponseError(
                f"Salesforce nextRecordsUrl ({shape(next_url)}) leaves the instance"
            )
        return str(url)
