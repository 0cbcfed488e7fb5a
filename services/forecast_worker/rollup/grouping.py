"""The groupings a roll-up answers by, apart so that schemas and table definitions can name
them without importing the roll-up's query (and through it the tables)."""

from __future__ import annotations

from typing import Literal

GroupBy = Literal["rep", "team", "manager", "region"]
