"""Deal changes' fields from the JSON text the database returns, many at a time.

A bulk load decodes ~20k objects a chunk: orjson does it at three times `json`'s speed, and
decoding them as one array saves a call a row. orjson reads an integer past 64 bits as a
float where `json` (which decoded the fields before) keeps it exact, so a text holding a run
of 19 digits is left to `json`; finding one (digits mapped to zeros, then one search) costs a
tenth of the decoding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def decode_all(texts: Sequence[str]) -> list[dict[str, Any]]:
    joined = "[" + ",".join(texts) + "]"
    exact = _LONG_NUMBER in joined.encode().translate(_DIGITS_AS_ZERO)
    decoded: list[dict[str, Any]] = (json if exact else orjson).loads(joined)
    return decoded
