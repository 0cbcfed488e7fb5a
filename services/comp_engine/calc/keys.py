"""Line keys for the lines a segment produces; see `lines.LineKey` for why keys are what
they are."""

from __future__ import annotations

from services.comp_engine.calc.credits import Credit
from services.comp_engine.calc.lines import Kind, LineKey, new_key
from services.comp_engine.calc.segments import Segment


def deal_key(segment: Segment, kind: Kind, rule: str, credit: Credit) -> LineKey:
    b = credit.booking
    return new_key(
        segment.rep_id, segment.period.label, kind, rule, b.deal_id, b.number, credit.role
    )


def period_key(segment: Segment, kind: Kind, rule: str) -> LineKey:
    """A line about the segment rather than a deal; a partial segment (mid-period change)
    tags its rule with its first day so the two parts of a period never share a key."""
    tag = "" if segment.start == segment.period.start else f"@{segment.start.isoformat()}"
    return LineKey(segment.rep_id, segment.period.label, kind, rule + tag, "", 0, "")
