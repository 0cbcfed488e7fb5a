"""The stage check at the door of the deal projection: which of a batch's changes name a
stage or pipeline the stored forecast configuration does not know (`stage_check`).

Cheap on the common path: a batch none of whose changes sets a stage or pipeline reads
nothing; otherwise the configuration comes from the worker's cache (`CurrentStages`, one
version check per batch, which the fold reuses: `status.BatchRules`), and the stored
pipelines only of deals whose change sets a stage alone: the current one, and every stored
pipeline move only of a deal a change of the batch is late for. A redelivered change is never
refused, whatever the configuration says now: it was judged when it first came, and the
projection dedupes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.deals import repository, stage_check
from services.forecast_worker.deals.projection import Change
from services.forecast_worker.deals.stage_check import Unknown
from services.forecast_worker.deals.status import BatchRules


async def refuse_unknown(
    conn: AsyncConnection, *, changes: Sequence[Change], batch: BatchRules
) -> dict[int, Unknown]:
    """The changes to dead-letter, by position in `changes`, each with why."""
    if not any(stage_check.sets_stage_or_pipeline(c) for c in changes):
        return {}
    table = await batch.table()
    if not table.configured:
        return {}
    found = stage_check.refusals(changes, table, await _stored_moves(conn, changes))
    if not found:
        return found
    seen = await repository.stored_keys(conn, changes=[changes[i] for i in found])
    return {
        i: why
        for i, why in found.items()
        if (changes[i].key.source, changes[i].key.event_id) not in seen
    }


async def _stored_moves(
    conn: AsyncConnection, changes: Sequence[Change]
) -> dict[str, stage_check.PipelineMoves]:
    """The stored pipeline moves the stage-only changes of the batch are judged by: the
    current pipeline as the one move of a deal all of whose changes are newer than its
    current version, every stored move of the others."""
    deal_ids = stage_check.needs_stored_pipeline(changes)
    if not deal_ids:
        return {}
    current = await repository.current_pipelines(conn, deal_ids=deal_ids)
    late = stage_check.reaching_back(changes, {d: key for d, (key, _) in current.items()})
    moves: dict[str, stage_check.PipelineMoves] = {
        deal: [move] for deal, move in current.items() if deal not in late
    }
    if late:
        moves.update(await repository.pipeline_moves(conn, deal_ids=late))
    return moves
