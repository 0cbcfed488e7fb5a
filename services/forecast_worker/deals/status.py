"""The status rules one batch folds with: the stage names of the settings under the stored
forecast configuration of the batch's transaction (`projection.StageRules`).

Read at most once per batch, and only when a fold can reach a stage: the stage check
(`gate`) and the fold share the one read (`CurrentStages.read`: one version check, the
table itself cached by version), so a batch that sets a stage pays nothing more than the
check paid before. A batch none of whose changes sets a stage or pipeline reads nothing
unless it rebuilds a history (a late change): an appended change that sets neither keeps
its deal's status, and a deal's first change without a stage is open whatever the rules.

Reading share-locks the configuration version until the batch commits, so a replacement of
the configuration waits for every batch that folded under the old one, and the restatement
that follows it (`config.restate`) finds their versions.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.config.current import CurrentStages
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deals.projection import Change, StageRules
from services.forecast_worker.deals.stage_check import sets_stage_or_pipeline


class BatchRules:
    """One batch's view of the configuration, inside its transaction `conn`."""

    def __init__(self, conn: AsyncConnection, *, stages: CurrentStages, names: StageRules) -> None:
        self._conn = conn
        self._stages = stages
        self._names = names
        self._table: StageTable | None = None

    async def table(self) -> StageTable:
        """The stored configuration, read on first use."""
        if self._table is None:
            self._table = await self._stages.read(self._conn)
        return self._table

    async def rules(self, *, folding: Sequence[Change], rebuilding: bool) -> StageRules:
        """The rules to fold `folding` with (and, when `rebuilding`, whole histories)."""
        if self._table is None and not rebuilding and not any(map(sets_stage_or_pipeline, folding)):
            return self._names
        table = await self.table()
        return self._names.under(table) if table.configured else self._names
