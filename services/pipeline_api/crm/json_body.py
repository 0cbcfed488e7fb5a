"""JSON bodies read exactly, as every CRM body is read: webhook deliveries, archived
deliveries replayed, and REST answers.

Fractions come back as `Decimal` (money), integers as `int`, and a number too large to
carry safely as its text; nesting is bounded. Every failure is a `ValueError`, as every
parser's error is.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.money import MAX_PLAIN_DIGITS

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
