"""Ids made from display names, the same whichever loader reads the name.

The dataset loader and the hierarchy import both turn people's and teams' names into
rep, team and manager ids; a deal loaded by one must land on the rep the other imported,
so both use this one function.
"""

from __future__ import annotations

import re
import unicodedata


def slug(text: str) -> str:
    """Lower-case ASCII, accents dropped, every run of anything else one "-"; empty when
    the name has no letters or digits (the caller decides whether that is an error)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
