"""Table-shaped responses: cursor pagination and CSV, the same way on every list endpoint.

Cursors are opaque base64 of the last row's sort key, so a client paging while rows are
added neither skips nor repeats a row. CSV has stable column names for BI tools.

CSV cells are neutralised for spreadsheets (OWASP "CSV injection"): text a spreadsheet
would read as a formula (a deal named `=HYPERLINK(...)` from a CRM) gets a leading `'`,
so it shows as text. A cell that is a plain decimal number ("-12.50") stays a number.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from shared.problems import Problem
from shared.values import INT64_MAX

CSV_MEDIA_TYPE = "text/csv"


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values), default=str)).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(values, list) or len(values) != arity:
        raise _invalid_cursor()
    return values


MAX_ID = INT64_MAX
"""The largest BIGINT: ids beyond it are refused as input, not sent to the database."""


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id after which a page keyed by a BIGINT id starts; 400 for a forged cursor."""
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise _invalid_cursor()
    return value


def decode_text_cursor(cursor: str | None) -> str | None:
    """The key after which a page keyed by a text column starts; 400 for a forged cursor."""
    if cursor is None:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not isinstance(value, str) or "\x00" in value:
        raise _invalid_cursor()
    return value


def decode_instant_id_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """The `(instant, BIGINT id)` after which a page ordered by time then id starts (as
    `encode_cursor([instant.isoformat(), id])` wrote it); 400 for a forged cursor."""
    if cursor is None:
        return None
    instant, value = decode_cursor(cursor, 2)
    if not isinstance(instant, str) or not isinstance(value, int) or isinstance(value, bool):
        raise _invalid_cursor()
    try:
        at = datetime.fromisoformat(instant)
    except ValueError as exc:
        raise _invalid_cursor() from exc
    if at.tzinfo is None or not 0 <= value <= MAX_ID:
        raise _invalid_cursor()
    return at, value


def decode_text_date_id_cursor(cursor: str | None) -> tuple[str, date, int] | None:
    """The `(text, day, BIGINT id)` after which a page ordered by a text column, a date, then
    id starts (as `next_cursor` wrote it); 400 for a forged cursor."""
    if cursor is None:
        return None
    text, day, value = decode_cursor(cursor, 3)
    if not isinstance(text, str) or "\x00" in text or not isinstance(day, str):
        raise _invalid_cursor()
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise _invalid_cursor()
    try:
        return text, date.fromisoformat(day), value
    except ValueError as exc:
        raise _invalid_cursor() from exc


def _invalid_cursor() -> Problem:
    return Problem(400, "The cursor is not valid; use next_cursor from a previous page.")


def next_cursor(rows: Sequence[Any], limit: int, *keys: str) -> str | None:
    """The cursor after a full page (keyed by the sort columns `keys`, dates and instants
    as ISO text); None on the last page."""
    if not rows or len(rows) < limit:
        return None
    return encode_cursor([getattr(rows[-1], key) for key in keys])


def wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        if format not in ("json", "csv"):
            raise Problem(400, "format must be 'json' or 'csv'.")
        return format == "csv"
    return CSV_MEDIA_TYPE in request.headers.get("accept", "")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
"""A number as `str(Decimal)` writes it, exponent included (`-1E-7`): a value, not a formula."""


def neutralise(text: str) -> str:
    """`text` as a spreadsheet shows it verbatim: formula-like text gets a leading `'`."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return neutralise(orjson.dumps(value, default=str).decode())
    return neutralise(str(value))


def csv_response(
    columns: Sequence[str], rows: Iterable[dict[str, Any]], next_cursor: str | None
) -> Response:
    out = io.StringIO()
    # RFC 4180's CRLF: the writer then quotes any cell holding a CR or LF, which a bare "\n"
    # terminator would leave a lone CR unquoted and the row broken.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    return Response(out.getvalue(), media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8", headers=headers)
