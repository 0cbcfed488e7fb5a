"""Builders for canonical events, and an independent model of what a deal should become.

`expected_deals` is deliberately not the production fold: it replays each deal's events
field by field with "greatest (time, sequence, source, id) wins", so the tests check the
projection against a second, simpler implementation of the ordering rule.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

CREATED = "com.salesops.deal.created.v1"
UPDATED = "com.salesops.deal.updated.v1"
DELETED = "com.salesops.deal.deleted.v1"


def event(
    type_: str,
    data: dict[str, Any],
    *,
    time: datetime | str,
    source: str = "test://suite",
    id: str | None = None,
    sequence: int | None = None,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or uuid.uuid4().hex,
        "source": source,
        "type": type_,
        "time": time if isinstance(time, str) else time.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    if sequence is not None:
        ev["sequence"] = sequence
    return ev


def _key(ev: dict[str, Any]) -> tuple[datetime, int, str, str]:
    time = datetime.fromisoformat(ev["time"].replace("Z", "+00:00"))
    seq = ev.get("sequence")
    return (time, -1 if seq is None else int(seq), ev["source"], ev["id"])


WON = {"closedwon", "closed_won", "won", "closed won"}
LOST = {"closedlost", "closed_lost", "lost", "closed lost"}


def expected_deals(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Final field values per deal: for each field, the value from the greatest key."""
    unique = {(e["source"], e["id"]): e for e in events}
    per_field: dict[str, dict[str, tuple[tuple[datetime, int, str, str], Any]]] = defaultdict(dict)
    deleted: dict[str, tuple[tuple[datetime, int, str, str], bool]] = {}
    for ev in unique.values():
        deal = ev["data"]["deal_id"]
        key = _key(ev)
        if ev["type"] == DELETED or ev["type"] == CREATED:
            is_deleted = ev["type"] == DELETED
            if deal not in deleted or key > deleted[deal][0]:
                deleted[deal] = (key, is_deleted)
        if ev["type"] == DELETED:
            continue
        flat = {k: v for k, v in ev["data"].items() if k not in ("deal_id", "properties")}
        flat.update({f"properties.{k}": v for k, v in ev["data"].get("properties", {}).items()})
        for name, value in flat.items():
            current = per_field[deal].get(name)
            if current is None or key > current[0]:
                per_field[deal][name] = (key, value)
    out: dict[str, dict[str, Any]] = {}
    for deal, fields in per_field.items():
        values = {n: kv[1] for n, kv in fields.items() if not n.startswith("properties.")}
        # Status follows the stage unless the latest event touching either set it explicitly.
        status = fields.get("status")
        stage = fields.get("stage")
        if status is None or (stage is not None and stage[0] > status[0]):
            values.pop("status", None)
        values["properties"] = {
            n.removeprefix("properties."): kv[1]
            for n, kv in fields.items()
            if n.startswith("properties.")
        }
        if "status" not in values:
            folded = str(values.get("stage", "")).lower()
            values["status"] = "won" if folded in WON else "lost" if folded in LOST else "open"
        values["deleted"] = deleted.get(deal, (None, False))[1]
        out[deal] = values
    return out
