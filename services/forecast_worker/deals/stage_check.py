"""Which deal changes name a stage or pipeline the forecast configuration does not know.

Pure. A change is checked only for what it sets: a pipeline must be configured, and a stage
must be one of its deal's pipeline at the change's time (the one the change sets, else the
one the last change before it in the deal's order set, stored or of the batch; the default
pipeline when none did, as the fold reads it). Names match as `StageTable.lookup` matches
them, without regard to case. When no pipeline is configured nothing is checked: a
deployment that never configured its forecast keeps every deal, and the roll-ups list their
stages as unmapped.

Judged by the time, a late change setting a stage alone is kept or refused as the deal's
history will hold it, whatever pipeline the deal moved to since, so the replay of a
configuration that knows its stage in that pipeline lands it. A late change that moves a
deal does not judge again the stored changes it now precedes: they were checked when they
came, and the rebuild that lands it keeps them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import Change
from shared.ordering import OrderKey

PipelineMoves = Sequence[tuple[OrderKey, str | None]]
"""The changes of one deal that set its pipeline, in any order: each one's key and the
pipeline it set."""

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


def reaching_back(changes: Sequence[Change], current: Mapping[str, OrderKey]) -> set[str]:
    """The deals of `current` (each stored deal's key of its current version) a change of
    the batch precedes or meets: only their stored pipeline moves tell the pipeline at its
    time. For the others the current pipeline stands for every stored move, all older than
    every change of theirs in the batch."""
    return {c.deal_id for c in changes if c.deal_id in current and c.key <= current[c.deal_id]}


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
    changes: Sequence[Change], table: StageTable, stored: Mapping[str, PipelineMoves]
) -> dict[int, Unknown]:
    """The changes to refuse, by position. Each is read against its deal's pipeline at its
    time: the last move before it among the stored ones (`stored`) and the accepted changes
    of the batch, which are checked in the deals' order, so that a batch is judged as the
    same changes arriving one by one in order would be."""
    moves = {deal: sorted(known, key=_when) for deal, known in stored.items()}
    out: dict[int, Unknown] = {}
    for index in sorted(range(len(changes)), key=lambda i: changes[i].key):
        change = changes[index]
        deal = moves.setdefault(change.deal_id, [])
        before = bisect_left(deal, change.key, key=_when)
        found = unknown(change.fields, deal[before - 1][1] if before else None, table)
        if found is not None:
            out[index] = found
        elif "pipeline" in change.fields:
            insort(deal, (change.key, change.fields["pipeline"]), key=_when)
    return out


def _when(move: tuple[OrderKey, str | None]) -> OrderKey:
    return move[0]
