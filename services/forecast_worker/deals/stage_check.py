"""Which deal changes name a stage or pipeline the forecast configuration does not know.

Pure. A change is checked only for what it sets: a pipeline must be configured, and a stage
must be one of its deal's pipeline (the one the change sets, else the deal's as stored, or
as an earlier change of the batch set it; the default pipeline when it has none). Names
match as `StageTable.lookup` matches them, without regard to case. When no pipeline is
configured nothing is checked: a deployment that never configured its forecast keeps every
deal, and the roll-ups list their stages as unmapped.

The stored pipeline is the deal's current one, not the one in force at the change's time: a
late change setting a stage alone, older than the deal's last pipeline change, is judged
against the newer pipeline, and the rebuild that lands it in the deal's history does not
judge it again. Pipeline changes are rare and a stage name seldom belongs to one pipeline
only; judging by the time would read each late change's version, on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import Change

UNKNOWN_STAGE = "unknown_stage"
UNKNOWN_PIPELINE = "unknown_pipeline"
CODES = (UNKNOWN_STAGE, UNKNOWN_PIPELINE)
"""The reasons a change is refused, as dead letters begin: a configuration that now knows
the stage replays them."""


@dataclass(frozen=True)
class Unknown:
    code: str
    detail: str


def sets_stage_or_pipeline(change: Change) -> bool:
    return change.fields.get("stage") is not None or "pipeline" in change.fields


def needs_stored_pipeline(changes: Sequence[Change]) -> set[str]:
    """The deals whose stored pipeline decides a change: it sets a stage and no pipeline."""
    return {
        c.deal_id
        for c in changes
        if c.fields.get("stage") is not None and "pipeline" not in c.fields
    }


def unknown(fields: Mapping[str, Any], pipeline: str | None, table: StageTable) -> Unknown | None:
    """Why a change setting `fields` on a deal in `pipeline` is refused; None if it is not."""
    if not table.configured:
        return None
    stage = fields.get("stage")
    if stage is None and "pipeline" not in fields:
        return None
    named = fields.get("pipeline", pipeline)
    if not table.knows_pipeline(named):
        return Unknown(UNKNOWN_PIPELINE, f"pipeline {named!r} is not in the forecast configuration")
    if stage is not None and table.lookup(named, stage) is None:
        in_pipeline = named or table.default_pipeline
        return Unknown(
            UNKNOWN_STAGE,
            f"stage {stage!r} is not in pipeline {in_pipeline!r} of the forecast configuration",
        )
    return None


def refusals(
    changes: Sequence[Change], table: StageTable, stored: Mapping[str, str | None]
) -> dict[int, Unknown]:
    """The changes to refuse, by position, checked in read order: a deal's pipeline is the
    stored one (`stored`) until an accepted change of the batch sets another."""
    pipelines = dict(stored)
    out: dict[int, Unknown] = {}
    for index, change in enumerate(changes):
        found = unknown(change.fields, pipelines.get(change.deal_id), table)
        if found is not None:
            out[index] = found
        elif "pipeline" in change.fields:
            pipelines[change.deal_id] = change.fields["pipeline"]
    return out
