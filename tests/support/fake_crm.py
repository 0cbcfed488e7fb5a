"""A local stand-in for the three CRMs' REST APIs, for testing the re-sync clients.

It is the external CRM, not a piece of this project: served for real over HTTP (uvicorn on
127.0.0.1 via `serve_in_loop`), answering with the shapes the vendors document:

    HubSpot     GET /crm/v3/objects/deals/{id}        {id, properties{...strings}, createdAt,
                GET /crm/v3/objects/deals             updatedAt, archived, associations?}
                                                      list: {results, paging.next.after}
    Salesforce  GET /services/data/vNN.N/sobjects/Opportunity/{id}   {attributes, Id, ...}
                GET /services/data/vNN.N/sobjects/{Task|Event}/{id}  (404 ENTITY_IS_DELETED
                                                      for one in the recycle bin)
                GET /services/data/vNN.N/query?q=SOQL                {totalSize, done,
                GET /services/data/vNN.N/query/{locator}              nextRecordsUrl, records}
                POST /services/oauth2/token  refresh token flow: {access_token,
                                                      instance_url, ...[, refresh_token]}
    Pipedrive   GET /api/v2/deals/{id}                {success, data}
                GET /api/v2/deals?limit=&cursor=      {success, data[], additional_data
                                                       {next_cursor}}

Each CRM has its own token (HubSpot and Salesforce `Authorization: Bearer`, Pipedrive
`x-api-token`), its own error bodies (HubSpot `{status, message, category}`, Salesforce
`[{errorCode, message}]`, Pipedrive `{success: false, error}`) and its own rate-limit
headers. Tests queue failures (`rate_limit`, `server_error`, `fail`) that are answered
before the real response, and read `requests` / `log` to see what the client sent.

Numbers are stored as `Decimal` and written as JSON numbers digit for digit ("1234.50"
stays 1234.50 on the wire), as Salesforce and Pipedrive send amounts.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response

_DECIMAL_MARK = "\u0000decimal:"
_DECIMAL_TEXT = re.compile(r'"\\u0000decimal:(-?[0-9]+(?:\.[0-9]+)?)"')


def dumps(value: Any) -> bytes:
    """JSON with each `Decimal` written as a number exactly as it reads (1234.50)."""

    def mark(v: Any) -> Any:
        if isinstance(v, Decimal):
            return _DECIMAL_MARK + format(v, "f")
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [mark(x) for x in v]
        return v

    return _DECIMAL_TEXT.sub(r"\1", json.dumps(mark(value))).encode()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers=headers, media_type="application/json")


@dataclass
class Failure:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LoggedRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class CrmState:
    """One CRM account: its token, its deals (stored as the CRM shapes them), the
    failures queued for the next requests, and what was asked of it."""

    kind: str
    token: str
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    log: list[LoggedRequest] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    quota_exhausted: bool = False
    """Answer the next successful request with a remaining-quota header of 0."""
    page_size: int | None = None
    """Salesforce: records per query batch (the real default is 2000)."""
    engagements: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Activities by "<object>/<id>": HubSpot "calls/<id>" -> engagement object (with a
    `deals` list of deal ids); Salesforce "Task/<id>" or "Event/<id>" -> the record."""
    oauth_clients: dict[str, str] = field(default_factory=dict)
    """Salesforce connected apps: consumer key -> consumer secret."""
    refresh_tokens: set[str] = field(default_factory=set)
    """Salesforce refresh tokens that still work."""
    rotate_refresh_tokens: bool = False
    """Issue a new refresh token with every access token and retire the one used."""
    token_requests: int = 0

    def expire_session(self) -> None:
        """Salesforce: the current access token's session times out (401 from now on)."""
        self.token = f"expired-{uuid.uuid4().hex}"

    def add(self, *records: dict[str, Any]) -> None:
        for record in records:
            key = record.get("id", record.get("Id"))
            self.deals[str(key)] = record

    def fail(self, status: int, body: Any, *, times: int = 1, **headers: str) -> None:
        for _ in range(times):
            self.failures.append(Failure(status, body, dict(headers)))

    def rate_limit(self, *, times: int = 1, retry_after: str | None = "1") -> None:
        """Answer the next `times` requests with this CRM's 429 (and `Retry-After`)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if self.kind == "hubspot":
            body: Any = {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
            }
            headers |= {"X-HubSpot-RateLimit-Remaining": "0"}
        elif self.kind == "pipedrive":
            body = {"success": False, "error": "Request over limit", "errorCode": 429}
            headers |= {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}
        else:
            body = [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        for _ in range(times):
            self.failures.append(Failure(429, body, dict(headers)))

    def request_limit_exceeded(self, *, times: int = 1) -> None:
        """Salesforce's answer to an org over its daily API limit: 403, no Retry-After."""
        body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        self.fail(403, body, times=times)

    def server_error(self, *, times: int = 1, status: int = 500) -> None:
        if self.kind == "hubspot":
            body: Any = {
                "status": "error",
                "message": "internal error",
                "correlationId": str(uuid.uuid4()),
                "category": "INTERNAL_ERROR",
            }
        elif self.kind == "salesforce":
            body = [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]
        else:
            body = {"success": False, "error": "Internal server error"}
        self.fail(status, body, times=times)

    def reset(self, token: str | None = None) -> None:
        self.deals.clear()
        self.engagements.clear()
        self.log.clear()
        self.failures.clear()
        self.requests = 0
        self.quota_exhausted = False
        self.page_size = None
        self.oauth_clients.clear()
        self.refresh_tokens.clear()
        self.rotate_refresh_tokens = False
        self.token_requests = 0
        if token is not None:
            self.token = token


@dataclass
class FakeCrms:
    hubspot: CrmState = field(default_factory=lambda: CrmState("hubspot", "hs-token"))
    salesforce: CrmState = field(default_factory=lambda: CrmState("salesforce", "sf-token"))
    pipedrive: CrmState = field(default_factory=lambda: CrmState("pipedrive", "pd-token"))
    salesforce_multi_currency: bool = False

    def reset(self) -> None:
        self.hubspot.reset("hs-token")
        self.salesforce.reset("sf-token")
        self.pipedrive.reset("pd-token")
        self.salesforce_multi_currency = False

    def of(self, kind: str) -> CrmState:
        state = getattr(self, kind)
        assert isinstance(state, CrmState)
        return state


# --- records as each CRM shapes them ----------------------------------------------------


def hubspot_deal(
    deal_id: str,
    *,
    created: str = "2025-01-02T03:04:05.678Z",
    updated: str = "2025-03-04T05:06:07.890Z",
    companies: Sequence[tuple[str, str]] = (),
    **properties: str | None,
) -> dict[str, Any]:
    """A deal as HubSpot stores it: every property a string (or null)."""
    props: dict[str, str | None] = {
        "createdate": created,
        "hs_lastmodifieddate": updated,
        "hs_object_id": deal_id,
    }
    props.update(properties)
    record: dict[str, Any] = {
        "id": deal_id,
        "properties": props,
        "createdAt": created,
        "updatedAt": updated,
        "archived": False,
        "companies": [{"id": cid, "type": kind} for cid, kind in companies],
    }
    return record


SALESFORCE_STANDARD = (
    "Id",
    "IsDeleted",
    "AccountId",
    "Name",
    "Description",
    "StageName",
    "Amount",
    "Probability",
    "CloseDate",
    "Type",
    "NextStep",
    "LeadSource",
    "IsClosed",
    "IsWon",
    "ForecastCategory",
    "ForecastCategoryName",
    "OwnerId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)


def hubspot_call(
    call_id: str,
    *,
    deal: str = "332507367156",
    owner: str = "75761595",
    title: str = "Discovery call",
    modified: str = "2026-06-01T10:05:00Z",
) -> dict[str, Any]:
    """A call engagement as GET /crm/v3/objects/calls/{id} has it (deals as associations)."""
    return {
        "id": call_id,
        "createdAt": "2026-06-01T10:00:00Z",
        "updatedAt": modified,
        "archived": False,
        "deals": [deal],
        "properties": {
            "hs_timestamp": "2026-06-01T09:30:00Z",
            "hs_lastmodifieddate": modified,
            "hubspot_owner_id": owner,
            "hs_call_title": title,
        },
    }


def salesforce_opportunity(opportunity_id: str, **fields: Any) -> dict[str, Any]:
    """An Opportunity as Salesforce stores it (numbers as Decimal, dates as text)."""
    record: dict[str, Any] = {
        "Id": opportunity_id,
        "IsDeleted": False,
        "IsClosed": False,
        "IsWon": False,
        "CreatedDate": "2025-01-10T08:00:00.000+0000",
        "LastModifiedDate": "2025-03-01T12:30:45.000+0000",
        "SystemModstamp": "2025-03-01T12:31:00.000+0000",
    }
    record.update(fields)
    return record


SALESFORCE_ACTIVITY_STANDARD = {
    "Task": (
        "Id",
        "WhoId",
        "WhatId",
        "Subject",
        "ActivityDate",
        "Status",
        "Priority",
        "OwnerId",
        "Description",
        "IsDeleted",
        "AccountId",
        "IsClosed",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "IsArchived",
        "CallDurationInSeconds",
        "CallType",
        "CallDisposition",
        "TaskSubtype",
        "CompletedDateTime",
    ),
    "Event": (
        "Id",
        "WhoId",
        "WhatId",
        "Subject",
        "Location",
        "IsAllDayEvent",
        "ActivityDateTime",
        "ActivityDate",
        "DurationInMinutes",
        "StartDateTime",
        "EndDateTime",
        "Description",
        "AccountId",
        "OwnerId",
        "IsPrivate",
        "ShowAs",
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "IsArchived",
        "EventSubtype",
    ),
}


def salesforce_activity(entity: str, record_id: str, **fields: Any) -> dict[str, Any]:
    """A Task or Event as Salesforce stores it: every standard field, null when unset."""
    record: dict[str, Any] = dict.fromkeys(SALESFORCE_ACTIVITY_STANDARD[entity])
    record.update(
        Id=record_id,
        IsDeleted=False,
        IsArchived=False,
        CreatedDate="2025-01-10T08:00:00.000+0000",
        LastModifiedDate="2025-03-01T12:30:45.000+0000",
        SystemModstamp="2025-03-01T12:31:00.000+0000",
    )
    record.update(fields)
    return record


def pipedrive_deal(deal_id: int, **fields: Any) -> dict[str, Any]:
    """A deal as Pipedrive API v2 shapes it (RFC 3339 times, integer ids)."""
    record: dict[str, Any] = {
        "id": deal_id,
        "title": f"Deal {deal_id}",
        "owner_id": 1,
        "person_id": None,
        "org_id": None,
        "pipeline_id": 1,
        "stage_id": 1,
        "value": 0,
        "currency": "USD",
        "add_time": "2025-02-01T10:00:00Z",
        "update_time": "2025-03-05T11:22:33Z",
        "stage_change_time": None,
        "is_deleted": False,
        "is_archived": False,
        "status": "open",
        "probability": None,
        "lost_reason": None,
        "visible_to": 3,
        "close_time": None,
        "won_time": None,
        "lost_time": None,
        "expected_close_date": None,
        "label_ids": [],
        "origin": "ManuallyCreated",
        "custom_fields": {},
    }
    record.update(fields)
    return record


# --- the app ---------------------------------------------------------------------------


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode()


def _position(cursor: str | None) -> int | None:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    kind, _, number = text.partition(":")
    return int(number) if kind == "pos" and number.isdigit() else None


def create_app(crms: FakeCrms) -> FastAPI:
    app = FastAPI(title="fake CRM APIs")

    def gate(state: CrmState, request: Request) -> Response | None:
        """Count and log the request, check its token, answer a queued failure."""
        state.requests += 1
        state.log.append(
            LoggedRequest(request.url.path, dict(request.query_params), dict(request.headers))
        )
        if state.kind == "pipedrive":
            authorised = request.headers.get("x-api-token") == state.token
        else:
            authorised = request.headers.get("authorization") == f"Bearer {state.token}"
        if not authorised:
            return _json(*_unauthorised(state.kind))
        if state.failures:
            failure = state.failures.popleft()
            return _json(failure.body, failure.status, failure.headers)
        return None

    def quota_headers(state: CrmState) -> dict[str, str]:
        exhausted, state.quota_exhausted = state.quota_exhausted, False
        if state.kind == "hubspot":
            return {
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "0" if exhausted else "99",
            }
        if state.kind == "pipedrive":
            return {
                "x-ratelimit-limit": "40",
                "x-ratelimit-remaining": "0" if exhausted else "39",
                "x-ratelimit-reset": "2",
            }
        return {"Sforce-Limit-Info": f"api-usage={state.requests}/15000"}

    # HubSpot CRM v3 ---------------------------------------------------------------------

    def hubspot_render(record: dict[str, Any], request: Request) -> dict[str, Any]:
        asked = [p for p in request.query_params.get("properties", "").split(",") if p]
        wanted = {"createdate", "hs_lastmodifieddate", "hs_object_id", *asked}
        out: dict[str, Any] = {
            "id": record["id"],
            "properties": {k: v for k, v in record["properties"].items() if k in wanted},
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record["archived"],
        }
        associations = request.query_params.get("associations", "").split(",")
        if "companies" in associations and record["companies"]:
            out["associations"] = {"companies": {"results": record["companies"]}}
        return out

    @app.get("/crm/v3/objects/deals/{deal_id}")
    async def hubspot_get(deal_id: str, request: Request) -> Response:
        state = crms.hubspot
        if (refused := gate(state, request)) is not None:
            return refused
        record = state.deals.get(deal_id)
        if record is None or record["archived"]:
            return _json(
                {
                    "status": "error",
                    "message": "Object not found.  objectId are usually numeric.",
                    "correlationId": str(uuid.uuid4()),
                    "context": {"id": [deal_id]},
                    "category": "OBJECT_NOT_FOUND",
                },
                404,
                quota_headers(state),
            )
        return _json(hubspot_render(record, request), 200, quota_headers(state))

    @app.get("/crm/v3/objects/{objects}/{object_id}")
    async def hubspot_engagement(objects: str, object_id: str, request: Request) -> Response:
        """Calls, emails, meetings, tasks and notes, with `associations.deals` when asked."""
        state = crms.hubspot
        if (refused := gate(state, request)) is not None:
            return refused
        record = state.engagements.get(f"{objects}/{object_id}")
        if record is None:
            return _json(
                {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"},
                404,
                quota_headers(state),
            )
        out = {k: v for k, v in record.items() if k != "deals"}
        if "deals" in request.query_params.get("associations", "").split(","):
            out["associations"] = {
                "deals": {"results": [{"id": d, "type": "call_to_deal"} for d in record["deals"]]}
            }
        return _json(out, 200, quota_headers(state))

    @app.get("/crm/v3/objects/deals")
    async def hubspot_list(request: Request) -> Response:
        state = crms.hubspot
        if (refused := gate(state, request)) is not None:
            return refused
        limit_text = request.query_params.get("limit", "10")
        start = _position(request.query_params.get("after"))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100 or start is None:
            return _json(
                {
                    "status": "error",
                    "message": "limit must be 1..100 and after a cursor from paging.next",
                    "correlationId": str(uuid.uuid4()),
                    "category": "VALIDATION_ERROR",
                },
                400,
            )
        limit = int(limit_text)
        live = sorted(
            (r for r in state.deals.values() if not r["archived"]), key=lambda r: int(r["id"])
        )
        page = live[start : start + limit]
        body: dict[str, Any] = {"results": [hubspot_render(r, request) for r in page]}
        if start + limit < len(live):
            after = _cursor(start + limit)
            body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return _json(body, 200, quota_headers(state))

    # Salesforce REST ----------------------------------------------------------------------

    queries: dict[str, tuple[str, list[str], list[str]]] = {}

    def sf_records(sobject: str) -> dict[str, dict[str, Any]]:
        """The org's records of one sObject type, by id."""
        if sobject == "Opportunity":
            return crms.salesforce.deals
        prefix = f"{sobject}/"
        return {
            key.removeprefix(prefix): record
            for key, record in crms.salesforce.engagements.items()
            if key.startswith(prefix)
        }

    def sf_schema(sobject: str = "Opportunity") -> list[str]:
        if sobject != "Opportunity":
            return list(SALESFORCE_ACTIVITY_STANDARD[sobject])
        custom = sorted({k for r in crms.salesforce.deals.values() for k in r if k.endswith("__c")})
        currency = ["CurrencyIsoCode"] if crms.salesforce_multi_currency else []
        return [*SALESFORCE_STANDARD, *currency, *custom]

    def sf_render(
        record: dict[str, Any], fields: list[str], version: str, sobject: str = "Opportunity"
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/{version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            out[name] = record.get(name)
        return out

    def sf_error(status: int, code: str, message: str, state: CrmState) -> Response:
        return _json([{"message": message, "errorCode": code}], status, quota_headers(state))

    def sf_page(qid: str, offset: int, version: str) -> Response:
        state = crms.salesforce
        sobject, fields, ids = queries[qid]
        size = state.page_size or 2000
        stored = sf_records(sobject)
        records = [
            sf_render(stored[i], fields, version, sobject)
            for i in ids[offset : offset + size]
            if i in stored
        ]
        body: dict[str, Any] = {"totalSize": len(ids), "done": offset + size >= len(ids)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{qid}-{offset + size}"
        body["records"] = records
        return _json(body, 200, quota_headers(state))

    @app.get("/services/data/{version}/sobjects/Opportunity/{record_id}")
    async def salesforce_get(version: str, record_id: str, request: Request) -> Response:
        state = crms.salesforce
        if (refused := gate(state, request)) is not None:
            return refused
        record = state.deals.get(record_id)
        if record is None or record.get("IsDeleted"):
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist", state)
        schema = sf_schema()
        asked = [f.strip() for f in request.query_params.get("fields", "").split(",") if f]
        unknown = [f for f in asked if f not in schema]
        if unknown:
            return sf_error(400, "INVALID_FIELD", f"No such column '{unknown[0]}'", state)
        return _json(sf_render(record, asked or schema, version), 200, quota_headers(state))

    @app.get("/services/data/{version}/sobjects/{sobject}/{record_id}")
    async def salesforce_get_activity(
        version: str, sobject: str, record_id: str, request: Request
    ) -> Response:
        state = crms.salesforce
        if (refused := gate(state, request)) is not None:
            return refused
        if sobject not in SALESFORCE_ACTIVITY_STANDARD:
            return sf_error(404, "NOT_FOUND", f"sObject type '{sobject}' is not supported", state)
        record = sf_records(sobject).get(record_id)
        if record is None:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist", state)
        if record.get("IsDeleted"):
            return sf_error(404, "ENTITY_IS_DELETED", "entity is deleted", state)
        return _json(
            sf_render(record, sf_schema(sobject), version, sobject), 200, quota_headers(state)
        )

    @app.get("/services/data/{version}/query")
    async def salesforce_query(version: str, request: Request) -> Response:
        state = crms.salesforce
        if (refused := gate(state, request)) is not None:
            return refused
        soql = request.query_params.get("q", "")
        match = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)\s*", soql, re.I | re.S)
        if match is None:
            return sf_error(400, "MALFORMED_QUERY", f"unexpected token in {soql!r}", state)
        sobject = match.group(2)
        if sobject != "Opportunity" and sobject not in SALESFORCE_ACTIVITY_STANDARD:
            return sf_error(400, "INVALID_TYPE", f"sObject type '{sobject}'", state)
        schema = sf_schema(sobject)
        fields: list[str] = []
        for item in (i.strip() for i in match.group(1).split(",")):
            if item.upper() == "FIELDS(STANDARD)":
                chosen = [f for f in schema if not f.endswith("__c")]
            elif item.upper() in ("FIELDS(ALL)", "FIELDS(CUSTOM)"):
                return sf_error(
                    400,
                    "MALFORMED_QUERY",
                    "The SOQL FIELDS function must have a LIMIT of at most 200",
                    state,
                )
            elif item in schema:
                chosen = [item]
            else:
                return sf_error(400, "INVALID_FIELD", f"No such column '{item}'", state)
            for name in chosen:
                if name in fields:
                    return sf_error(
                        400, "INVALID_FIELD", f"duplicate field selected: {name}", state
                    )
                fields.append(name)
        ids = [i for i, r in sf_records(sobject).items() if not r.get("IsDeleted")]
        qid = f"01gFAKE{len(queries):08d}"
        queries[qid] = (sobject, fields, ids)
        return sf_page(qid, 0, version)

    @app.get("/services/data/{version}/query/{locator}")
    async def salesforce_query_more(version: str, locator: str, request: Request) -> Response:
        state = crms.salesforce
        if (refused := gate(state, request)) is not None:
            return refused
        qid, _, offset = locator.rpartition("-")
        if qid not in queries or not offset.isdigit():
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", state)
        return sf_page(qid, int(offset), version)

    # Pipedrive API v2 ---------------------------------------------------------------------

    @app.post("/services/oauth2/token")
    async def salesforce_token(request: Request) -> Response:
        """The OAuth 2.0 refresh token flow, answered as Salesforce documents it."""
        state = crms.salesforce
        state.token_requests += 1
        form = dict(parse_qsl((await request.body()).decode()))
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        refresh = form.get("refresh_token", "")
        if form.get("grant_type") != "refresh_token":
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        if state.oauth_clients.get(client_id) != secret:
            return _json(
                {"error": "invalid_client", "error_description": "invalid client credentials"}, 400
            )
        if refresh not in state.refresh_tokens:
            return _json(
                {"error": "invalid_grant", "error_description": "expired access/refresh token"}, 400
            )
        state.token = f"00D000000000001!{uuid.uuid4().hex}"
        body: dict[str, Any] = {
            "access_token": state.token,
            "signature": base64.b64encode(uuid.uuid4().bytes).decode(),
            "scope": "refresh_token api",
            "instance_url": str(request.base_url).rstrip("/"),
            "id": "https://login.salesforce.com/id/00D000000000001EAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1764000000000",
        }
        if state.rotate_refresh_tokens:
            state.refresh_tokens.discard(refresh)
            body["refresh_token"] = f"5Aep{uuid.uuid4().hex}"
            state.refresh_tokens.add(body["refresh_token"])
        return _json(body)

    @app.get("/api/v2/deals/{deal_id}")
    async def pipedrive_get(deal_id: str, request: Request) -> Response:
        state = crms.pipedrive
        if (refused := gate(state, request)) is not None:
            return refused
        if not deal_id.isdigit():
            return _json(
                {"success": False, "error": "id must be an integer", "code": "ERR_VALIDATION"},
                400,
                quota_headers(state),
            )
        record = state.deals.get(deal_id)
        if record is None:
            return _json(
                {
                    "success": False,
                    "error": "Deal not found",
                    "error_info": "Please check developers.pipedrive.com",
                },
                404,
                quota_headers(state),
            )
        return _json({"success": True, "data": record}, 200, quota_headers(state))

    @app.get("/api/v2/deals")
    async def pipedrive_list(request: Request) -> Response:
        state = crms.pipedrive
        if (refused := gate(state, request)) is not None:
            return refused
        limit_text = request.query_params.get("limit", "100")
        start = _position(request.query_params.get("cursor"))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 500 or start is None:
            return _json(
                {"success": False, "error": "limit must be 1..500, cursor from next_cursor"},
                400,
                quota_headers(state),
            )
        limit = int(limit_text)
        live = sorted(
            (r for r in state.deals.values() if not r.get("is_deleted")), key=lambda r: r["id"]
        )
        page = live[start : start + limit]
        more = start + limit < len(live)
        body = {
            "success": True,
            "data": page,
            "additional_data": {"next_cursor": _cursor(start + limit) if more else None},
        }
        return _json(body, 200, quota_headers(state))

    return app


def _unauthorised(kind: str) -> tuple[Any, int]:
    if kind == "hubspot":
        return (
            {
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            },
            401,
        )
    if kind == "salesforce":
        return [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401
    return (
        {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com",
        },
        401,
    )
