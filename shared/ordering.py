"""Which of two changes to the same record is newer.

CRMs retry and reorder deliveries, so arrival order means nothing. A change is ordered by
the CRM's own clock (`time`), then by `sequence` within that instant, then by the event's
identity so that even exact ties resolve the same way on every replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class OrderKey(NamedTuple):
    time: datetime
    sequence: int
    source: str
    event_id: str

    @classmethod
    def of(cls, *, time: datetime, sequence: int | None, source: str, event_id: str) -> OrderKey:
        return cls(time, sequence if sequence is not None else -1, source, event_id)


def is_newer(candidate: OrderKey, current: OrderKey | None) -> bool:
    return current is None or candidate > current
