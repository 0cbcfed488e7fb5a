"""A hierarchy file (CSV or YAML rows of rep, team, manager, region) as upsert events.

Pure: the CLI reads the file and posts what this returns through the public API. Ids are
slugs of the names, so the same people get the same ids whichever file names them, and
event ids are derived from the event's content, so importing a file again is all
duplicates. A team is described once per file: rows that disagree on its manager, region
or parent are an error naming them, not a silent last-row-wins. Likewise a rep in two rows
effective the same day (overlapping dates: two teams at once), and teams whose parents in
the file lead back to themselves (a cycle), are errors naming the rows or the path, before
anything is sent.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import orjson
import yaml

from services.forecast_worker.hierarchy.handler import REP_UPSERTED, TEAM_UPSERTED_V2
from shared.ids import slug

SOURCE = "salesops://hierarchy-import"
_NAMESPACE = uuid.UUID("5d0b7f8e-2a4c-4e0b-9a43-0c1f3b6a9e21")
_TEAM_FIELDS = ("manager", "region", "parent_team")


class HierarchyFileError(ValueError):
    """The file cannot be imported; the message says which row and why."""


def read_rows(name: str, content: str) -> list[dict[str, str]]:
    """The file's rows as text mappings: CSV with a header, or YAML (a list of mappings,
    or a mapping whose `rows` is one)."""
    suffix = PurePath(name).suffix.lower()
    if suffix == ".csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(content))]
    if suffix not in (".yaml", ".yml"):
        raise HierarchyFileError(f"{name}: expected a .csv or .yaml file")
    loaded = yaml.safe_load(content)
    rows = loaded.get("rows") if isinstance(loaded, dict) else loaded
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise HierarchyFileError(f"{name}: expected a list of rows (or `rows:` holding one)")
    return [{str(k): "" if v is None else str(v) for k, v in r.items()} for r in rows]


def to_events(
    rows: Iterable[Mapping[str, str]], *, effective_from: date | None, now: datetime
) -> list[dict[str, Any]]:
    """Team events first, then rep events, each in first-seen order."""
    teams: dict[str, dict[str, Any]] = {}
    seen_in: dict[str, int] = {}
    rep_days: dict[tuple[str, date | None], int] = {}
    reps: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        rep, team = _cell(row, "rep"), _cell(row, "team")
        if not rep or not team:
            raise HierarchyFileError(f"row {number}: `rep` and `team` are required")
        day = _date(row, number) or effective_from
        if (earlier := rep_days.setdefault((slug(rep), day), number)) != number:
            when = day.isoformat() if day else "the day of the import"
            raise HierarchyFileError(
                f"row {number}: rep {rep!r} is also in row {earlier} effective {when}; "
                "give each row of a rep its own effective_from"
            )
        described = {f: _cell(row, f) for f in _TEAM_FIELDS}
        team_id = slug(team)
        known = teams.get(team_id)
        if known is not None and known["described"] != described:
            raise HierarchyFileError(
                f"row {number}: team {team!r} differs from row {seen_in[team_id]} "
                f"({known['described']} vs {described})"
            )
        if known is None:
            seen_in[team_id] = number
            teams[team_id] = {"described": described, "name": team, "day": day}
        rep_data: dict[str, Any] = {"rep_id": slug(rep), "name": rep, "team_id": team_id}
        if email := _cell(row, "email"):
            rep_data["email"] = email
        reps.append(_dated(rep_data, day))
    _refuse_cycles({tid: slug(t["described"]["parent_team"]) for tid, t in teams.items()})
    events = [_event(TEAM_UPSERTED_V2, _team_data(tid, t), now) for tid, t in teams.items()]
    events.extend(_event(REP_UPSERTED, data, now) for data in reps)
    return events


def _refuse_cycles(parents: Mapping[str, str]) -> None:
    """Refuse a file whose teams' parents lead back to a team on the way (the worker would
    dead-letter the event that closes the loop; the file is refused whole instead)."""
    for team_id in parents:
        path = [team_id]
        parent = parents[team_id]
        while parent:
            if parent in path:
                loop = " -> ".join([*path[path.index(parent) :], parent])
                raise HierarchyFileError(f"the teams' parents form a cycle: {loop}")
            path.append(parent)
            parent = parents.get(parent, "")


def _team_data(team_id: str, team: Mapping[str, Any]) -> dict[str, Any]:
    described = team["described"]
    data: dict[str, Any] = {"team_id": team_id, "name": team["name"]}
    if manager := described["manager"]:
        data["manager_id"] = slug(manager)
        data["manager_name"] = manager
    if region := described["region"]:
        data["region"] = region
    if parent := described["parent_team"]:
        data["parent_team_id"] = slug(parent)
    return _dated(data, team["day"])


def _dated(data: dict[str, Any], day: date | None) -> dict[str, Any]:
    return {**data, "effective_from": day.isoformat()} if day else data


def _event(type_: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The id hashes type and data only: a second import of the same facts, at any time,
    is a duplicate of the first."""
    identity = orjson.dumps([type_, data], option=orjson.OPT_SORT_KEYS).decode()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(_NAMESPACE, identity)),
        "source": SOURCE,
        "type": type_,
        "time": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def _cell(row: Mapping[str, str], name: str) -> str:
    return (row.get(name) or "").strip()


def _date(row: Mapping[str, str], number: int) -> date | None:
    text = _cell(row, "effective_from")
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise HierarchyFileError(f"row {number}: effective_from {text!r} is not a date") from exc
