"""The groupings a roll-up answers by, apart so that schemas and table definitions can name
them without importing the roll-up's query (and through it the tables), and the order every
per-group table of the forecast answers in."""

from __future__ import annotations

from typing import Literal

GroupBy = Literal["rep", "team", "manager", "region"]

GroupKey = tuple[str | None, str | None]
"""(group, currency): one row of a per-group table."""


def row_order(key: GroupKey) -> tuple[bool, str, bool, str]:
    """Group, then currency, each with None last: roll-up, snapshot, accuracy, metrics,
    waterfall and projection rows line up the same way."""
    group, currency = key
    return (group is None, group or "", currency is None, currency or "")
