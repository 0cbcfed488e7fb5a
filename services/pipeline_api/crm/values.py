"""Reading a CRM's values: timestamps, dates, amounts and ids, the same way for every CRM.

A value that cannot be read raises `Unreadable`, whose message names the field and the
value's shape but never the value itself (job errors are shown to operators).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.money import MoneyError, amount_text, number_text


class Unreadable(ValueError):
    """A CRM value that cannot be read. The message names the field and the value's type
    and length, never the value: job errors are shown to operators and the value is the
    CRM's (or whoever answered)."""

    def __init__(self, field: str, value: Any, what: str) -> None:
        super().__init__(f"{field}: {shape(value)} is not {what}")


def shape(value: Any) -> str:
    """What a value is, without what it says: `a str of 12 chars`, `a list of 3 items`."""
    name = type(value).__name__
    if isinstance(value, str | bytes):
        return f"a {name} of {len(value)} chars"
    if isinstance(value, list | dict):
        return f"a {name} of {len(value)} items"
    return "null" if value is None else f"a {name}"


def instant(value: Any, field: str) -> datetime:
    """An aware UTC datetime from ISO 8601 / RFC 3339 (`Z`, `+00:00`, `+0000`; no offset
    means UTC) or from epoch milliseconds (HubSpot's other date form)."""
    if isinstance(value, bool):
        raise Unreadable(field, value, "a timestamp")
    try:
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))
        if not isinstance(value, str) or not value.strip():
            raise Unreadable(field, value, "a timestamp")
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, OverflowError) as exc:  # their messages quote the value
        raise Unreadable(field, value, "a timestamp") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def iso_date(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise Unreadable(field, value, "a date") from exc
    return instant(value, field).date().isoformat()


def iso_time(value: Any, field: str) -> str | None:
    """An instant as ISO 8601 text in UTC with `Z`, as webhook parsers write it."""
    if value is None or value == "":
        return None
    return instant(value, field).isoformat().replace("+00:00", "Z")


def decimal_text(value: Any, field: str) -> str | None:
    """An amount as plain decimal text ("1234.50"), from a string, int or Decimal, through
    the one amount parser, whose size limits hold before the number is written out."""
    if value is None or value == "":
        return None
    try:
        return amount_text(value)
    except MoneyError as exc:  # its message may quote the value
        raise Unreadable(field, value, "an exact decimal amount within the size limits") from exc


def jsonable(value: Any) -> Any:
    """`Decimal`s (JSON numbers with a fraction) as exact decimal strings, so properties
    store as JSON (orjson and parked changes take no Decimal)."""
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def id_text(value: Any) -> str | None:
    """A CRM id as text (ids arrive as ints or strings); None for none or empty."""
    return None if value is None or value == "" else str(value)
