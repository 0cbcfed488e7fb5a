"""Canonical events as the dataset loaders write them: one envelope builder, one slug.

Both loaders (the real dataset and the synthetic org) build reps and teams here, so the
switch of `team_event` to `com.salesops.team.upserted.v2` (which carries `region`) happens
in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from shared import ids

DEAL_CREATED = "com.salesops.deal.created.v1"
DEAL_UPDATED = "com.salesops.deal.updated.v1"
REP_UPSERTED = "com.salesops.rep.upserted.v1"
TEAM_UPSERTED = "com.salesops.team.upserted.v2"


def slug(text: str) -> str:
    """A stable id from a display name (`shared.ids.slug`, as the hierarchy import makes
    it); a name without letters or digits is refused, since the dataset must not lose it."""
    value = ids.slug(text)
    if not value:
        raise ValueError(f"{text!r} has no letters or digits to make an id from")
    return value


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def cloud_event(
    type_: str,
    data: dict[str, Any],
    *,
    time: datetime,
    source: str,
    id: str,
    sequence: int | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type_,
        "time": time.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    if sequence is not None:
        event["sequence"] = sequence
    return event


@dataclass(frozen=True)
class Team:
    """One team per manager: its id is the manager's, its region the manager's office."""

    manager: str
    region: str

    @property
    def team_id(self) -> str:
        return slug(self.manager)


def team_event(team: Team, *, effective_from: date, source: str) -> dict[str, Any]:
    """A team as `team.upserted.v2`, the version that carries the region and the
    manager's name (the manager is no rep in the dataset, so the name is the only place
    it is spelled out)."""
    data = {
        "team_id": team.team_id,
        "name": f"{team.manager}'s team",
        "manager_id": team.team_id,
        "manager_name": team.manager,
        "region": team.region,
        "effective_from": effective_from.isoformat(),
    }
    return cloud_event(
        TEAM_UPSERTED,
        data,
        time=midnight(effective_from),
        source=source,
        id=f"team:{team.team_id}:{effective_from.isoformat()}",
    )


def rep_event(
    rep_id: str, name: str, team_id: str, *, effective_from: date, source: str
) -> dict[str, Any]:
    data = {
        "rep_id": rep_id,
        "name": name,
        "team_id": team_id,
        "effective_from": effective_from.isoformat(),
    }
    return cloud_event(
        REP_UPSERTED,
        data,
        time=midnight(effective_from),
        source=source,
        id=f"rep:{rep_id}:{effective_from.isoformat()}",
    )
