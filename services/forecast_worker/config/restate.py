"""The deals a new forecast configuration restates, rebuilt after it is stored.

A deal's status follows its stage's configured status (`deals.projection.StageRules`), so
a replacement that changes a stage's status changes what the deals in that stage were.
The history must then be what a fresh replay of the stream under the new configuration
would leave, or replaying the stream would change it: each such deal's versions are
rebuilt from its stored changes (`deal_changes`) under the new configuration, exactly as a
late change rebuilds them. Deciding by the configuration in force when an event was
applied instead would not be replay-stable: a replay applies every event under the
current configuration.

Beside the consumer, after the dead-letter replay (`config.replays`, which reports both
through `GET /v1/forecast/config/replay`): a page of deals per transaction, in deal order,
so that however many deals the configuration restates, neither the replacement nor the
consumer waits long on them. Each page share-locks the configuration version as a batch
does, and locks its deals' current rows as a batch does (in deal order: no deadlock with
one), so a batch folds either before the page, which then rebuilds from its changes too, or
after it, under the same configuration. A batch that folded under the old configuration
committed before the replacement (it held the version's share lock), so the pages, which
start after it, see its versions. A newer replacement meanwhile waits for the page under
way, then restates from the start once this pass ends.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.forecast_worker.config import repository
from services.forecast_worker.config.current import CurrentStages
from services.forecast_worker.deals import repository as deals
from services.forecast_worker.deals.projection import StageRules, Version, build_versions

PAGE = 500
"""Deals read per transaction; only those the configuration restates are rebuilt."""


async def restate_deals(engine: AsyncEngine, *, names: StageRules) -> int:
    """Rebuild every deal whose history the stored configuration changes; answer how many.

    `names` are the settings' stage names, the rule for a stage the configuration does not
    know (and the only one while none is stored)."""
    stages = CurrentStages()
    after, restated = "", 0
    while True:
        async with engine.begin() as conn:
            table = await stages.read(conn)
            rules = names.under(table) if table.configured else names
            page = await repository.stale_deals(
                conn, after=after, size=PAGE, won=names.won, lost=names.lost
            )
            if page.last is None:
                return restated
            if page.stale:
                await deals.load_current(conn, deal_ids=page.stale)  # locked until commit
                changes = await deals.load_changes(conn, deal_ids=page.stale)
                rebuilt: list[Version] = []
                for deal_id in page.stale:
                    rebuilt.extend(build_versions(changes[deal_id], rules))
                await deals.write_versions(conn, appended=[], rebuilt=rebuilt)
        after, restated = page.last, restated + len(page.stale)
