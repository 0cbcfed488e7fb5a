"""Where deal events become deal state, inside the consumer's transaction.

New changes are stored deduped by event identity (a redelivery is a duplicate), then folded
into each deal's history: appended when they are newer than its current version, else the
deal is rebuilt from all its stored changes, so a late event lands where it belongs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.forecast_worker.config.current import CurrentStages
from services.forecast_worker.deals import gate, repository
from services.forecast_worker.deals.projection import (
    DEAL_CANCELLED,
    DEAL_CREATED,
    DEAL_DELETED,
    DEAL_UPDATED,
    Change,
    StageRules,
    Version,
    build_versions,
    extend_versions,
)
from services.forecast_worker.deals.status import BatchRules
from shared.dispatch import Applied, Refused
from shared.events import CanonicalEvent, DealCancelled, DealCreated, DealDeleted, DealUpdated
from shared.ordering import OrderKey, is_newer

TYPES = (DEAL_CREATED, DEAL_UPDATED, DEAL_DELETED, DEAL_CANCELLED)
CANCELLATION = "cancellation"
"""The property a `deal.cancelled` event sets: the forecast keeps the deal won (its bookings
stand) and records the cancellation in its history, as a version of its own."""


def to_change(event: CanonicalEvent) -> Change:
    env = event.envelope
    payload = event.payload
    assert isinstance(payload, DealCreated | DealUpdated | DealDeleted | DealCancelled)
    if isinstance(payload, DealDeleted):
        merged = payload.merged_into
        fields: dict[str, Any] = {"properties": {"merged_into": merged}} if merged else {}
    elif isinstance(payload, DealCancelled):
        fields = {
            "properties": {CANCELLATION: payload.model_dump(mode="json", exclude={"deal_id"})}
        }
    else:
        fields = payload.changed_fields()
    return Change(
        key=OrderKey.of(time=env.time, sequence=env.sequence, source=env.source, event_id=env.id),
        deal_id=payload.deal_id,
        event_type=env.type,
        fields=fields,
    )


async def apply_deal_changes(
    conn: AsyncConnection, *, changes: Sequence[Change], rules: StageRules | BatchRules
) -> int:
    """Fold new changes into each deal's history; returns how many were new.

    Set-based: whatever the batch holds, a fixed handful of statements (store the changes,
    lock the current rows, load every change of the deals a late change lands inside, then
    write the versions and the current rows), the fold in memory. The rules are fixed, or
    the batch's (`status.BatchRules`), read once the fold knows whether it needs them."""
    fresh = await repository.insert_changes(conn, changes=changes)
    by_deal: dict[str, list[Change]] = defaultdict(list)
    for change in fresh:
        by_deal[change.deal_id].append(change)
    if not by_deal:
        return 0
    current = await repository.load_current(conn, deal_ids=by_deal)
    late = sorted(  # they land inside a history: rebuilt from all its changes
        deal_id
        for deal_id, new in by_deal.items()
        if not is_newer(
            min(c.key for c in new), last.cause if (last := current.get(deal_id)) else None
        )
    )
    if isinstance(rules, BatchRules):
        rules = await rules.rules(folding=fresh, rebuilding=bool(late))
    appended: list[Version] = []
    for deal_id, new in sorted(by_deal.items()):
        if deal_id not in late:
            new.sort(key=lambda c: c.key)
            appended.extend(extend_versions(current.get(deal_id), new, rules))
    rebuilt: list[Version] = []
    if late:
        everything = await repository.load_changes(conn, deal_ids=late)
        for deal_id in late:
            versions = build_versions(everything[deal_id], rules)
            first_new = min(c.key for c in by_deal[deal_id])
            rebuilt.extend(_changed_suffix(versions, first_new=first_new))
    await repository.write_versions(conn, appended=appended, rebuilt=rebuilt)
    return len(fresh)


def _changed_suffix(versions: list[Version], *, first_new: OrderKey) -> list[Version]:
    """The versions of a rebuilt history that differ from the stored ones: from the one a
    late change closes onward. The stored history is the fold of the changes stored before,
    and the changes older than the first new one are the same, so the versions they open
    are equal but for the `valid_to` of the last of them."""
    start = next((n for n, v in enumerate(versions) if v.cause >= first_new), 0)
    return versions[max(start - 1, 0) :]


class DealEvents:
    """The handler of every deal event type: one batch's changes folded in one pass, but
    those naming a stage or pipeline the forecast configuration does not know, which it
    refuses (`gate`) for the consumer to dead-letter. `rules` are the settings' stage names;
    each batch folds them under the configuration stored in its transaction
    (`status.BatchRules`)."""

    def __init__(self, rules: StageRules) -> None:
        self._rules = rules
        self._stages = CurrentStages()

    async def __call__(self, conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
        changes = [to_change(event) for event in events]
        batch = BatchRules(conn, stages=self._stages, names=self._rules)
        unknown = await gate.refuse_unknown(conn, changes=changes, batch=batch)
        kept = [c for i, c in enumerate(changes) if i not in unknown]
        fresh = await apply_deal_changes(conn, changes=kept, rules=batch)
        refused = tuple(Refused(i, why.code, why.detail) for i, why in sorted(unknown.items()))
        return Applied(new=fresh, duplicates=len(kept) - fresh, refused=refused)
