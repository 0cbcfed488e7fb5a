"""The stage table the worker checks deal events against, read once per batch.

The stored document changes rarely and batches come thousands a minute, so the table is
kept between batches and rebuilt only when the stored version (the settings row's
`updated_at`) differs from the one it was built from. Reading the version share-locks that
row, once a document was ever stored, for the batch's transaction
(`repository.held_version`): a replacement waits for the batch, so a dead letter the batch
writes under the old document is committed before the replacement's replay looks for the
letters it mends (`config.replays`).

One cache serves the consumer, the background dead-letter replay and the replay route of its
worker (the same handler instance): each reads it in a transaction of its own that stores
no document, so it sees committed documents only,
and an entry is keyed by the version it was built from, so whichever reads first fills it
for the other. Two reads interleaving can only swap one entry for another: none is used
without its version being compared first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.config import repository
from services.forecast_worker.config.schemas import ForecastConfig
from services.forecast_worker.config.stages import StageTable


class CurrentStages:
    """One worker's cache of the stored stage table."""

    def __init__(self) -> None:
        self._cached: tuple[datetime | None, StageTable] | None = None

    async def read(self, conn: AsyncConnection) -> StageTable:
        """The table as stored in `conn`'s transaction, which then holds it until it ends."""
        version = await repository.held_version(conn)
        cached = self._cached
        if cached is None or cached[0] != version:
            config = ForecastConfig() if version is None else await repository.load_config(conn)
            cached = (version, StageTable.of(config))
            self._cached = cached
        return cached[1]
