"""Turn a request body into the list of events it carries, within the configured limits.

Three shapes are accepted: one CloudEvent object, a JSON array of them, or NDJSON. A body
that is not valid JSON at all is refused whole (400); an item that is valid JSON but not a
valid event, or one the key may not write (a source it is not bound to, the crm://
namespace, or a CRM's qualified deal, account or activity id), is rejected alone, so one
bad event never blocks the good ones beside it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import Request

from services.pipeline_api.crm.mapping import QUALIFIED_FIELDS, in_crm_namespace
from shared.auth import Principal, in_webhook_namespace, unprintable
from shared.events import CanonicalEvent, EventRejected, validate_event
from shared.problems import Problem

ABOUT_A_DEAL = frozenset({"com.salesops.deal.cancelled.v1", "com.salesops.invoice.paid.v1"})
"""Events a billing or contract system sends about a deal, which change none of its CRM's
fields: their `deal_id` may name a CRM's deal (a contract cancelled, an invoice paid for a
deal won in HubSpot), as the clawbacks and pay on cash of such deals need."""
NDJSON = "application/x-ndjson"
JSON_TYPES = (
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
)


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """Read the body, refusing it (413) as soon as it passes the limit rather than after."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, f"The body is larger than the limit of {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"The body is larger than the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    declared = request.headers.get("content-type") or "application/json"
    return declared.split(";")[0].strip().lower()


def parse_body(body: bytes, media_type: str) -> list[Any]:
    if media_type == NDJSON:
        items: list[Any] = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise Problem(
                    400, f"Line {number} of the NDJSON body is not valid JSON: {exc}"
                ) from exc
        return items
    if media_type not in JSON_TYPES:
        raise Problem(
            415, f"Content-Type {media_type!r} is not supported; use application/json or {NDJSON}."
        )
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}") from exc
    return parsed if isinstance(parsed, list) else [parsed]


async def read_events(request: Request, *, max_bytes: int, max_events: int) -> list[Any]:
    items = parse_body(await read_limited(request, max_bytes), _media_type(request))
    if not items:
        raise Problem(400, "The body holds no events.")
    if len(items) > max_events:
        raise Problem(413, f"The body holds {len(items)} events; the limit is {max_events}.")
    return items


def admit(
    item: Any, principal: Principal, *, max_future: timedelta, now: datetime
) -> CanonicalEvent:
    """One posted event, valid and one this key may write; else `EventRejected`."""
    event = validate_event(item, max_future=max_future, now=now)
    source = event.envelope.source
    if unprintable(source):
        raise EventRejected(
            f"source: {source!r} has leading or trailing whitespace or a control or format "
            "character"
        )
    if in_webhook_namespace(source):
        raise EventRejected(
            f"source: {source!r} is in the crm:// namespace, which only CRM webhooks and "
            "re-syncs write"
        )
    if not principal.may_write_source(source):
        raise EventRejected(f"source: this API key may not write source {source!r}")
    fields = vars(event.payload)  # getattr on a field the type lacks costs a raised error
    about = event.envelope.type in ABOUT_A_DEAL
    for field in QUALIFIED_FIELDS:
        value = fields.get(field)
        if about and field == "deal_id":
            continue
        if isinstance(value, str) and in_crm_namespace(value):
            raise EventRejected(
                f"data.{field}: {value!r} is a CRM's id, which only that CRM's webhooks and "
                "re-syncs write"
            )
    return event
