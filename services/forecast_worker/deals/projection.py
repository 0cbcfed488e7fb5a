"""Deal state from deal events: pure functions, no I/O.

A deal's history is the fold of its changes sorted by `OrderKey` (CRM time, sequence,
identity). Because the fold is over a sorted set, the result does not depend on the order
events arrived in: a late, older change is placed where it belongs, and never overwrites a
newer value. Each change opens a version, valid from its CRM time until the next change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.forecast_worker.config.stages import StageTable
from shared.deal_fields import FIELD_NAMES
from shared.ordering import OrderKey

DEAL_CREATED = "com.salesops.deal.created.v1"
DEAL_UPDATED = "com.salesops.deal.updated.v1"
DEAL_DELETED = "com.salesops.deal.deleted.v1"
DEAL_CANCELLED = "com.salesops.deal.cancelled.v1"

FIELDS = FIELD_NAMES
"""The fields whose values the fold keeps; `properties` it merges apart."""


@dataclass(frozen=True)
class StageRules:
    """Which stage means a closed deal, for events that carry no explicit status.

    The stored forecast configuration decides once it has pipelines (`table`): a deal is
    what its stage, in its pipeline (the default pipeline when it has none), is configured
    to be. The stage names of the settings (`SALESOPS_WON_STAGES` / `SALESOPS_LOST_STAGES`)
    decide before any configuration is stored, and for a stage the configuration does not
    know: under a configuration the stage check refuses new changes naming such a stage, so
    it reaches the fold only from history stored before it (rebuilt when a late change
    lands), and the names keep that history as it was when first applied, where "open"
    would quietly reopen deals the team once saw closed. Names match without regard to
    case, as the roll-ups and the stage check match them."""

    won: frozenset[str]
    lost: frozenset[str]
    table: StageTable | None = None
    """The configuration in force for the batch; None: the names alone."""

    @classmethod
    def of(cls, won: Iterable[str], lost: Iterable[str]) -> StageRules:
        return cls(frozenset(s.lower() for s in won), frozenset(s.lower() for s in lost))

    def under(self, table: StageTable) -> StageRules:
        """These names under the configuration `table`."""
        return replace(self, table=table)

    def status_for(self, stage: str | None, pipeline: str | None = None) -> str:
        rule = None if self.table is None else self.table.lookup(pipeline, stage)
        if rule is not None:
            return rule.status
        folded = (stage or "").lower()
        if folded in self.won:
            return "won"
        if folded in self.lost:
            return "lost"
        return "open"


@dataclass(frozen=True)
class Change:
    key: OrderKey
    deal_id: str
    event_type: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class DealState:
    """Field values in their JSON form (amount as a decimal string, dates as ISO text)."""

    deal_id: str
    values: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True)
class Version:
    number: int
    valid_from: datetime
    valid_to: datetime | None
    state: DealState
    cause: OrderKey


def fold(state: DealState | None, change: Change, rules: StageRules) -> DealState:
    """The deal after `change`, given the state just before it."""
    base = state or DealState(deal_id=change.deal_id)
    if change.event_type == DEAL_DELETED:
        properties = {**base.properties, **(change.fields.get("properties") or {})}
        return DealState(base.deal_id, dict(base.values), properties, deleted=True)
    values = dict(base.values)
    properties = dict(base.properties)
    for name, value in change.fields.items():
        if name == "properties":
            properties.update(value or {})
        elif name in FIELDS:
            values[name] = value
    sets_place = "stage" in change.fields or "pipeline" in change.fields
    if "status" not in change.fields and (sets_place or "status" not in values):
        values["status"] = rules.status_for(values.get("stage"), values.get("pipeline"))
    deleted = False if change.event_type == DEAL_CREATED else base.deleted
    return DealState(base.deal_id, values, properties, deleted)


def build_versions(changes: Sequence[Change], rules: StageRules) -> list[Version]:
    """Every version of one deal from all its changes, in any order."""
    ordered = sorted(changes, key=lambda c: c.key)
    return extend_versions(None, ordered, rules)


def extend_versions(
    last: Version | None, newer: Sequence[Change], rules: StageRules
) -> list[Version]:
    """Versions that follow `last` for changes all newer than it (the in-order fast path).

    The returned list starts with `last` closed at the first new change when `last` is
    given, so the caller writes back exactly the rows that changed.
    """
    out: list[Version] = []
    previous = last
    for change in newer:
        if previous is not None:
            out.append(_closed(previous, change.key.time))
        previous = Version(
            number=previous.number + 1 if previous else 1,
            valid_from=change.key.time,
            valid_to=None,
            state=fold(previous.state if previous else None, change, rules),
            cause=change.key,
        )
    if previous is not None and previous is not last:
        out.append(previous)
    return out


def _closed(version: Version, at: datetime) -> Version:
    return Version(version.number, version.valid_from, at, version.state, version.cause)
