"""A deal version as its row in `forecast.deals`, built value by value in Python: the
reference the projection's JSON statements and the row round trip are tested against."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from services.forecast_worker.deals.projection import Version
from shared.deal_fields import DEAL_FIELDS, DealField, Kind


def deal_row(version: Version) -> dict[str, Any]:
    """One version as its current row in `forecast.deals` holds it, typed as the driver
    reads it back: the reference the JSON statements are tested against, built value by
    value in Python."""
    state, cause = version.state, version.cause
    return {
        "deal_id": state.deal_id,
        **{f.name: column_value(f, state.values.get(f.name)) for f in DEAL_FIELDS},
        "deleted": state.deleted,
        "properties": orjson.dumps(state.properties).decode(),
        "version": version.number,
        "valid_from": version.valid_from,
        "sequence": cause.sequence,
        "event_source": cause.source,
        "event_id": cause.event_id,
    }


def column_value(field: DealField, value: Any) -> Any:
    """A value in the fold's JSON form as its column takes it."""
    if value is None:
        return field.stored_default
    if field.kind is Kind.MONEY:
        return Decimal(value)
    if field.kind is Kind.DATE:
        return date.fromisoformat(value) if value else None
    if field.kind is Kind.DATETIME:
        return datetime.fromisoformat(value) if value else None
    if field.kind is Kind.SPLITS:
        return orjson.dumps(value).decode()
    return value
