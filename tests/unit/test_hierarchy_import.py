"""A hierarchy file as upsert events: slugs for ids, content-derived event ids, one
description per team."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.forecast_worker.hierarchy.importer import (
    HierarchyFileError,
    read_rows,
    slug,
    to_events,
)
from shared.events import validate_event

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CSV = """rep,team,manager,region,email
Anna Snelling,Central Team,Dustin Brinkmann,Central,anna@example.com
Cecily Lampkin,Central Team,Dustin Brinkmann,Central,
Zane Levy,West Team,Summer Sewald,West,
"""


def test_rows_become_team_then_rep_events_that_validate() -> None:
    events = to_events(read_rows("h.csv", CSV), effective_from=date(2026, 1, 1), now=NOW)
    assert [(e["type"], e["data"].get("rep_id") or e["data"]["team_id"]) for e in events] == [
        ("com.salesops.team.upserted.v2", "central-team"),
        ("com.salesops.team.upserted.v2", "west-team"),
        ("com.salesops.rep.upserted.v1", "anna-snelling"),
        ("com.salesops.rep.upserted.v1", "cecily-lampkin"),
        ("com.salesops.rep.upserted.v1", "zane-levy"),
    ]
    assert events[0]["data"] == {
        "team_id": "central-team",
        "name": "Central Team",
        "manager_id": "dustin-brinkmann",
        "manager_name": "Dustin Brinkmann",
        "region": "Central",
        "effective_from": "2026-01-01",
    }
    assert events[2]["data"]["email"] == "anna@example.com"
    assert "email" not in events[3]["data"]
    for e in events:
        validate_event(e)


def test_event_ids_depend_on_content_only() -> None:
    first = to_events(read_rows("h.csv", CSV), effective_from=None, now=NOW)
    later = to_events(read_rows("h.csv", CSV), effective_from=None, now=datetime.now(UTC))
    assert [e["id"] for e in first] == [e["id"] for e in later]
    moved = to_events(
        read_rows(
            "h.csv",
            CSV.replace(
                "Zane Levy,West Team,Summer Sewald,West",
                "Zane Levy,Central Team,Dustin Brinkmann,Central",
            ),
        ),
        effective_from=None,
        now=NOW,
    )
    assert len({e["id"] for e in moved} - {e["id"] for e in first}) == 1, "only Zane's"
    assert "effective_from" not in first[0]["data"], "the server takes the event's day"


def test_yaml_rows_and_a_row_date_over_the_default() -> None:
    text = """
rows:
  - {rep: Ana, team: East, effective_from: 2026-02-01, parent_team: Global}
  - {rep: Bo, team: East, parent_team: Global}
"""
    events = to_events(read_rows("h.yaml", text), effective_from=date(2026, 1, 1), now=NOW)
    team, ana, bo = events
    assert team["data"]["parent_team_id"] == "global"
    assert team["data"]["effective_from"] == "2026-02-01", "the team's first row's date"
    assert ana["data"]["effective_from"] == "2026-02-01"
    assert bo["data"]["effective_from"] == "2026-01-01"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("h.csv", "rep,team\nAna,\n", "row 1: `rep` and `team` are required"),
        (
            "h.csv",
            "rep,team,region\nAna,East,EMEA\nBo,East,APAC\n",
            "row 2: team 'East' differs from row 1",
        ),
        ("h.csv", "rep,team,effective_from\nAna,East,soon\n", "'soon' is not a date"),
        (
            "h.csv",
            "rep,team,effective_from\nAna,East,2026-01-01\nBo,West,\nana,West,2026-01-01\n",
            "row 3: rep 'ana' is also in row 1 effective 2026-01-01",
        ),
        (
            "h.csv",
            "rep,team\nAna,East\nAna,West\n",
            "row 2: rep 'Ana' is also in row 1 effective the day",
        ),
        (
            "h.csv",
            "rep,team,parent_team\nAna,East,Global\nBo,Global,EMEA\nCy,EMEA,East\n",
            "cycle: east -> global -> emea -> east",
        ),
        ("h.csv", "rep,team,parent_team\nAna,East,East\n", "cycle: east -> east"),
        ("h.yaml", "just: text\n", "expected a list of rows"),
        ("h.txt", "", "expected a .csv or .yaml file"),
    ],
)
def test_a_bad_file_names_the_row_and_the_reason(name: str, text: str, message: str) -> None:
    with pytest.raises(HierarchyFileError, match=message):
        to_events(read_rows(name, text), effective_from=None, now=NOW)


def test_a_rep_on_other_days_and_a_parent_chain_are_fine() -> None:
    text = (
        "rep,team,parent_team,effective_from\n"
        "Ana,East,Global,2026-01-01\n"
        "Ana,West,Global,2026-04-01\n"
    )
    events = to_events(read_rows("h.csv", text), effective_from=None, now=NOW)
    moves = [
        (e["data"]["team_id"], e["data"]["effective_from"]) for e in events if "rep_id" in e["data"]
    ]
    assert moves == [("east", "2026-01-01"), ("west", "2026-04-01")]


def test_slugs_are_ascii_and_stable() -> None:
    assert slug("  Élodie O'Brien ") == "elodie-o-brien"
