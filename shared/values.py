"""Input types whose every accepted value the database and the JSON encoder can take.

A value the type admits must never fail later: an integer beyond BIGINT or a datetime that
overflows on its way to UTC would otherwise pass validation and answer 500 from the driver.
One definition each, used by every route and model, so the bound is the same everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, ValidationInfo

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Int64 = Annotated[int, Interval(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits PostgreSQL's BIGINT."""

Id64 = Annotated[int, Interval(ge=1, le=INT64_MAX)]
"""A BIGINT identity: positive, at most 2^63 - 1."""


STORED = "stored"
"""Validation context key: the value was admitted earlier and is read back (see below)."""


def _to_utc(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None:
        if not (info.context or {}).get(STORED):
            raise ValueError("must carry a UTC offset (RFC 3339)")
        # Events stored before naive times were refused were read as UTC; a republished
        # log must keep meaning what it meant, not dead-letter them.
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-05:00 is past datetime.max in UTC
        raise ValueError("the instant is outside the representable range in UTC") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""An RFC 3339 instant with a UTC offset, normalised to UTC; naive times are refused
because their meaning depends on a server's zone."""

# A JSON `\u0000` escape is a NUL only when the backslash before it is not itself escaped:
# an odd run of backslashes. Outside strings valid JSON has no backslash at all.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def json_has_nul(body: bytes) -> bool:
    """Whether a JSON text holds a NUL character in any string or key (PostgreSQL refuses
    NUL in text and jsonb). Runs on the raw bytes, so no parse is needed to decide."""
    return b"\x00" in body or (b"\\u0000" in body and _JSON_NUL.search(body) is not None)
