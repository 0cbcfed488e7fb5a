"""What every CRM's webhook authentication shares. Pure: no I/O, clock passed in.

Failures raise `SignatureError` whose message is for our logs only; the route answers a
bare 401 so that nothing in the answer helps an attacker. Every comparison is
constant-time, and every check accepts any of a source's active secrets (rotation). Each
CRM's own scheme lives in its package (`hubspot/signatures.py`, `pipedrive/auth.py`,
`salesforce/signatures.py`) and compares through `matches`, padding with `padded`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from secrets import token_hex

_TIMESTAMP = re.compile(r"[0-9]{1,16}")
"""An epoch timestamp header: ASCII digits, short. `str.isdigit` would let through
thousands of digits (int() refuses past 4300) and digits int() cannot read (`²`)."""


MAX_SECRETS = 2
"""A source's secrets: the current one and, during a rotation, the previous one."""
DECOYS = tuple(token_hex(32) for _ in range(MAX_SECRETS))
"""Checked in place of secrets a source lacks: random, so they never verify."""


def padded(secrets: list[str]) -> list[str]:
    """`secrets` made up to `MAX_SECRETS` with decoys, so a check costs the same whether a
    source is unknown or has one or two secrets, and its timing tells none of that."""
    return [*secrets, *DECOYS[len(secrets) :]]


class SignatureError(Exception):
    """The request is not authenticated. The message is for logs, never for the client."""


def epoch(value: str | None, unit: str) -> int:
    """A timestamp header's epoch value in `unit`, refused unless short ASCII digits."""
    if value is None or not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"timestamp is not up to 16 digits of epoch {unit}")
    return int(value)


def outside_window(value: str | None, unit: str, *, now: int, max_age: int) -> int | None:
    """How far a timestamp header is from `now` (in `unit`, positive for the past) when
    that is more than `max_age` either way, None inside the window: a replayed request
    is refused, and so is one from a clock too far ahead. Refused like `epoch` when it
    is not short digits."""
    age = now - epoch(value, unit)
    return age if abs(age) > max_age else None


def matches(expected: Iterable[str], given: str) -> bool:
    """Whether `given` is one of `expected`. Every candidate is compared, so the timing
    does not reveal which secret (if any) matched."""
    results = [hmac.compare_digest(e.encode(), given.encode()) for e in expected]
    return any(results)
