"""What a CRM delivery's body says, by the kind of endpoint it came to.

The webhook endpoints and the replay of archived requests both turn a raw body into
changes here, so a replay reads a stored delivery exactly as today's endpoint would read
it: with today's parsers and the source's current settings (own client ids, CDC field
lists). Raises `ValueError` (every parser's error derives from it) for a body that cannot
be read at all.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal, get_args

from services.pipeline_api.connectors import hubspot, pipedrive, salesforce
from services.pipeline_api.connectors.changes import CrmChange
from services.pipeline_api.sources import SourceIn

DeliveryKind = Literal["hubspot", "pipedrive", "salesforce-cdc", "salesforce-outbound"]
KINDS: tuple[str, ...] = get_args(DeliveryKind)


def exact_json(body: bytes) -> Any:
    """JSON with exact numbers: fractions as Decimal (money), big ints as int. A body that
    is not JSON (or not UTF-8) raises `ValueError`, as every parser's error does."""
    return json.loads(body, parse_float=Decimal)


def hubspot_changes(items: Any, portal: str) -> list[CrmChange]:
    """The changes of one portal's items in a HubSpot batch (a batch may mix portals)."""
    return hubspot.parse([i for i in hubspot.events(items) if str(i.get("portalId")) == portal])


def cdc_changes(event: Any, source: SourceIn) -> list[CrmChange]:
    return salesforce.parse_cdc(
        event,
        own_client_ids=frozenset(source.own_client_ids),
        field_lists=source.cdc_field_lists,
    )


def parse_delivery(kind: str, source: SourceIn, body: bytes) -> list[CrmChange]:
    """The changes a stored delivery to the `kind` endpoint holds for `source`."""
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
