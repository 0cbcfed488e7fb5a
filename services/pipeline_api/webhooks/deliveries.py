"""What a CRM delivery's body says, by the kind of endpoint it came to.

The webhook endpoints and the replay of archived requests both turn a raw body into
changes here, so a replay reads a stored delivery exactly as today's endpoint would read
it: with today's parsers and the source's current settings (own client ids, CDC field
lists). Raises `ValueError` (every parser's error derives from it) for a body that cannot
be read at all.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

from services.pipeline_api.crm.changes import (
    AccountMerged,
    CrmChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    to_json,
)
from services.pipeline_api.crm.hubspot import webhook as hubspot
from services.pipeline_api.crm.pipedrive import webhook as pipedrive
from services.pipeline_api.crm.salesforce import webhook as salesforce
from services.pipeline_api.sources.schemas import SourceIn
from shared.money import MAX_PLAIN_DIGITS

DeliveryKind = Literal["hubspot", "pipedrive", "salesforce-cdc", "salesforce-outbound"]
KINDS: tuple[str, ...] = get_args(DeliveryKind)


MAX_JSON_DEPTH = 64
"""Deepest nesting a body may have. Real CRM payloads nest a handful of levels; the limit
keeps every later step (our parsers, the JSON encoder of stored events) far from its own."""
MAX_INT = 2**64 - 1
MIN_INT = -(2**63)
"""Integers outside these bounds (what the event log's JSON encoder can write) stay text."""


def _number(text: str) -> Decimal | str:
    """A JSON number with a fraction or exponent, exact; kept as its text when writing it
    out would be large (`1e999999999`), so no later step can expand it."""
    if len(text) > MAX_PLAIN_DIGITS:
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds
        return text
    if abs(number.adjusted()) >= MAX_PLAIN_DIGITS:
        return text
    return number


def _integer(text: str) -> int | str:
    if len(text) > len(str(MIN_INT)):
        return text
    value = int(text)
    return value if MIN_INT <= value <= MAX_INT else text


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH, level by level, without recursion (plain
    loops and exact type checks: this runs on every large webhook body)."""
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        if not below:
            return
        level = below
    raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")


_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * len(str(MIN_INT).lstrip("-"))
_SCAN_CHUNK = 1 << 16


def _has_long_digit_run(body: bytes) -> bool:
    """Whether `body` holds 19 digits in a row, found by translating every digit to `0`
    a chunk at a time (overlapping by a run's length less one), so the copy stays small
    however large the body. A regular expression does it without a copy but took 13
    times as long on a 100-event HubSpot batch (250 us against 19 us)."""
    overlap = len(_LONG_DIGIT_RUN) - 1
    for start in range(0, len(body), _SCAN_CHUNK):
        if _LONG_DIGIT_RUN in body[start : start + _SCAN_CHUNK + overlap].translate(_DIGITS):
            return True
    return False


def exact_json(body: bytes) -> Any:
    """JSON with exact numbers: fractions as Decimal (money), ints as int, and a number
    too large to carry safely (an int beyond 64 bits, `1e999999999`) as its text, for
    validation to refuse with a reason where a number is needed. A body that is not JSON
    (or not UTF-8), or nests deeper than MAX_JSON_DEPTH, raises `ValueError`, as every
    parser's error does."""
    # An integer beyond 64 bits has 19 digits or more; only a body with such a run of
    # digits pays for the Python hook that keeps them as text.
    long_digits = _has_long_digit_run(body)
    try:
        parsed = json.loads(
            body,
            parse_float=_number,
            parse_int=_integer if long_digits else None,
            parse_constant=str,
        )
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    if isinstance(parsed, dict | list) and body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        _check_depth(parsed)
    return parsed


def _scrub(value: Any) -> Any:
    """A copy with every NUL character replaced by U+FFFD (depth is bounded on input)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _storable(change: CrmChange) -> CrmChange:
    if isinstance(change, Unsupported):
        return Unsupported(change.reason, _scrub(change.item))
    if isinstance(change, Ignored):
        return Ignored(_scrub(change.reason))
    content: Any
    if isinstance(change, ResyncRequest):
        content = [change.reason, *change.crm_ids, change.values]
    elif isinstance(change, AccountMerged):
        content = [change.merged_id, change.survivor_id, change.event_key]
    else:
        content = to_json(change)
    scrubbed = _scrub(content)
    if scrubbed == content:
        return change
    return Unsupported(
        "the change holds a NUL character (\\u0000), which PostgreSQL cannot store as "
        "text; kept here with U+FFFD in its place",
        scrubbed,
    )


def storable(body: bytes, changes: list[CrmChange]) -> list[CrmChange]:
    """The changes with each one that holds a NUL character turned into an `Unsupported`
    with that reason: PostgreSQL refuses NUL in text and jsonb, and one such change must
    not fail the request's other changes. JSON can only carry a NUL as `\\u0000` (and XML
    not at all), so a body without that text is passed through untouched."""
    if b"\\u0000" not in body:
        return changes
    return [_storable(change) for change in changes]


def hubspot_changes(items: Any, portal: str) -> list[CrmChange]:
    """The changes of one portal's items in a HubSpot batch (a batch may mix portals)."""
    return hubspot.parse([i for i in hubspot.events(items) if str(i.get("portalId")) == portal])


def hubspot_batch(
    items: Any, configured: Collection[str], *, paused: Collection[str] = ()
) -> dict[str, list[CrmChange]]:
    """The changes of a HubSpot batch for each of its portals that is `configured`, in
    portal order; empty when none is. One app's batch may mix portals: those without a
    source must not cost the others their delivery (HubSpot would retry the whole batch),
    so their items are noted as ignored among the first configured portal's changes,
    except a `paused` portal's (a disabled source's), which its own request keeps."""
    known = sorted(hubspot.portal_ids(items) & set(configured))
    if not known:
        return {}
    by_portal = {portal: hubspot_changes(items, portal) for portal in known}
    by_portal[known[0]] += [
        Ignored(f"no HubSpot source for portal {item['portalId']} accepts this delivery")
        for item in hubspot.events(items)
        if str(item["portalId"]) not in configured and str(item["portalId"]) not in paused
    ]
    return by_portal


def cdc_changes(event: Any, source: SourceIn) -> list[CrmChange]:
    return salesforce.parse_cdc(
        event,
        own_client_ids=frozenset(source.own_client_ids),
        field_lists=source.cdc_field_lists,
    )


def parse_delivery(kind: str, source: SourceIn, body: bytes) -> list[CrmChange]:
    """The changes a stored delivery to the `kind` endpoint holds for `source`."""
    return storable(body, _delivery_changes(kind, source, body))


def _delivery_changes(kind: str, source: SourceIn, body: bytes) -> list[CrmChange]:
    if kind == "hubspot":
        items = exact_json(body)
        hubspot.portal_ids(items)
        return hubspot_changes(items, source.account_id)
    if kind == "pipedrive":
        return pipedrive.parse(exact_json(body))
    if kind == "salesforce-cdc":
        return cdc_changes(exact_json(body), source)
    if kind == "salesforce-outbound":
        return list(salesforce.parse_outbound(body).changes)
    raise ValueError(f"no parser for deliveries of kind {kind!r}")
