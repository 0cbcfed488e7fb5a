"""What a CRM delivery's body says, by the kind of endpoint it came to, and what of it
PostgreSQL can store.

The replay of archived requests asks the endpoint that archived them (`registry`), so a
replay reads a stored delivery exactly as today's endpoint would read it: with today's
parsers and the source's current settings (own client ids, CDC field lists). Raises
`ValueError` (every parser's error derives from it) for a body that cannot be read at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from services.pipeline_api.crm.changes import (
    AccountMerged,
    CrmChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    to_json,
)
from services.pipeline_api.crm.registry import DELIVERY_KINDS, endpoint_for_delivery
from services.pipeline_api.sources.schemas import SourceIn

if TYPE_CHECKING:
    DeliveryKind = str
else:
    DeliveryKind = Literal[DELIVERY_KINDS]
    """The kinds requests are archived under, each adapter's endpoints' (an enum in the
    API)."""


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


def parse_delivery(kind: str, *, source: SourceIn, body: bytes) -> list[CrmChange]:
    """The changes a stored delivery to the `kind` endpoint holds for `source`."""
    return storable(body, endpoint_for_delivery(kind).replay(source, body))
