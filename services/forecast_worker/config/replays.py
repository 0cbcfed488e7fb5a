"""The dead letters a new forecast configuration may mend, replayed after it is stored, and
the deals it restates, rebuilt (`config.restate`).

Storing a document (`PUT /v1/forecast/config`) commits it and answers; this task, which
runs beside the consumer, sees the new version and replays the open `unknown_stage` and
`unknown_pipeline` letters oldest first, a page per transaction
(`shared.consumer.replay_open`): however many letters wait, the replacement neither holds
its locks while they are applied nor fails or rolls back because of them. The PUT in this
process wakes the task at once; a version stored by another replica, or before a restart,
is seen within `CHECK_SECONDS`.

None is missed: a batch that decided against the old document share-locks the settings row
(`repository.held_version`), so it commits before the replacement does, and its letters
are there when the replay, which starts after the replacement committed, looks for them.
The restatement follows the replay, so the deals the replayed letters created are
restated too (they were folded under the new configuration already: nothing to rebuild).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from sqlalchemy.ext.asyncio import AsyncEngine

from services.forecast_worker.config import repository
from services.forecast_worker.config.restate import restate_deals
from services.forecast_worker.deals import stage_check
from services.forecast_worker.deals.projection import StageRules
from shared.consumer import ConsumerSpec, replay_open

CHECK_SECONDS = 10.0
"""How often the stored version is compared with the one last replayed for."""

log = logging.getLogger("salesops.forecast.config")


class DeadLetterReplays:
    """One worker's replays: after each stored version, whoever stored it. `names` are the
    settings' stage names the consumer folds with (`deals.projection.StageRules`)."""

    def __init__(self, engine: AsyncEngine, spec: ConsumerSpec, names: StageRules) -> None:
        self._engine = engine
        self._spec = spec
        self._names = names
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A version was just stored: look now rather than at the next check."""
        self._wake.set()

    async def run(self) -> None:
        """Replay and restate for the stored version if that was not done yet (`replayed_for`, kept
        in the settings row, so a restart or another replica carries on where it stood),
        then wait for the next. A never configured deployment has nothing to replay: it
        refuses no stage."""
        while True:
            self._wake.clear()
            async with self._engine.connect() as conn:
                state = await repository.replay_state(conn)
            if state.pending and state.version is not None:
                replayed = await replay_open(
                    self._engine, spec=self._spec, codes=stage_check.CODES, log=log
                )
                restated = await restate_deals(self._engine, names=self._names)
                async with self._engine.begin() as conn:
                    await repository.mark_replayed_for(conn, version=state.version)
                log.info(
                    "the forecast configuration of %s applied %d dead letters, restated %d deals",
                    state.version,
                    replayed,
                    restated,
                )
            with suppress(TimeoutError):
                async with asyncio.timeout(CHECK_SECONDS):
                    await self._wake.wait()
