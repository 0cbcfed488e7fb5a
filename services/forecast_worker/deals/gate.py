"""The stage check at the door of the deal projection: which of a batch's changes name a
stage or pipeline the stored forecast configuration does not know (`stage_check`).

Cheap on the common path: a batch none of whose changes sets a stage or pipeline reads
nothing; otherwise the configuration comes from the worker's cache (`CurrentStages`, one
version check per batch, which the fold reuses: `status.BatchRules`), and the stored
pipelines only of deals whose change sets a stage alone. A redelivered change is never
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
    deal_ids = stage_check.needs_stored_pipeline(changes)
    stored = await repository.stored_pipelines(conn, deal_ids=deal_ids) if deal_ids else {}
    found = stage_check.refusals(changes, table, stored)
    if not found:
        return found
    seen = await repository.stored_keys(conn, changes=[changes[i] for i in found])
    return {
        i: why
        for i, why in found.items()
        if (changes[i].key.source, changes[i].key.event_id) not in seen
    }
