"""What the hierarchy read API answers: one row per rep, dates as ISO days."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

HIERARCHY_CSV_COLUMNS = (
    "rep_id",
    "rep_name",
    "team_id",
    "team_name",
    "manager_id",
    "manager_name",
    "region",
    "active",
    "valid_from",
    "valid_to",
)


class AssignmentOut(BaseModel):
    """A rep's version with its team as of the same day; `valid_to` is exclusive."""

    model_config = ConfigDict(from_attributes=True)

    rep_id: str
    rep_name: str
    team_id: str | None
    team_name: str | None
    manager_id: str | None
    manager_name: str | None
    region: str | None
    active: bool
    valid_from: date
    valid_to: date | None


class HierarchyOut(BaseModel):
    as_of: date
    items: list[AssignmentOut]


class RepHistory(BaseModel):
    rep_id: str
    versions: list[AssignmentOut]
