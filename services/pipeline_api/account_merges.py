"""Account merges: a CRM merged one account into another, so its deals belong to the survivor.

A merge is remembered (`pipeline.account_aliases`), not only applied once: a deal change
that names the merged account, however late it comes, is mapped onto the survivor. Chains
(A into B, B into C) are followed in whatever order their merges arrive; a merge that
would close a cycle is refused and parked.

The deals already in the log move by one `deal.updated` each, timed at the merge, stored
after the alias is committed. A deal change stored concurrently may have been mapped
before the alias existed, and its row may have been missed by the merge's look-up of the
log: so every stored row naming an account is checked against the aliases after it is
durable (`follow`). Each side writes, then reads what the other wrote, so at least one of
them sees the other; the update both may make has the same id (the merge's key and the
deal), so it is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api import repository
from services.pipeline_api.connectors.changes import (
    AccountMerged,
    CrmChange,
    DealChange,
    Unsupported,
)
from services.pipeline_api.connectors.mapping import (
    CREATED,
    UPDATED,
    event_source,
    qualified,
    unqualified,
)
from services.pipeline_api.event_log import EventLogWriter, LogRow
from services.pipeline_api.models import AccountAlias
from services.pipeline_api.sources import SourceIn


def survivors(aliases: Iterable[AccountAlias]) -> dict[str, str]:
    """Each merged account's last survivor, following chains (a cycle, which `record`
    never stores, would stop where it closes)."""
    into = {a.merged_id: a.survivor_id for a in aliases}
    out: dict[str, str] = {}
    for merged, survivor in into.items():
        seen = {merged}
        while survivor in into and survivor not in seen:
            seen.add(survivor)
            survivor = into[survivor]
        out[merged] = survivor
    return out


def _named(change: CrmChange) -> str | None:
    if isinstance(change, DealChange) and change.op != "deleted":
        value = change.fields.get("account_id")
        return None if value in (None, "") else str(value)
    return None


async def aliases_for(
    sessions: async_sessionmaker[AsyncSession], source: SourceIn, changes: Sequence[CrmChange]
) -> dict[str, str]:
    """The survivors of the accounts these changes name: one indexed query, and none when
    no deal change names an account."""
    named = {a for a in map(_named, changes) if a is not None}
    if not named:
        return {}
    async with sessions() as session:
        return survivors(await repository.account_aliases(session, source.id, named))


async def record(
    session: AsyncSession, source: SourceIn, merges: Sequence[AccountMerged]
) -> tuple[list[AccountMerged], list[Unsupported]]:
    """Store the merges as aliases, in the caller's transaction and under the source's
    merge lock: (those recorded, those refused as closing a cycle)."""
    recorded: list[AccountMerged] = []
    refused: list[Unsupported] = []
    if not merges:
        return recorded, refused
    await repository.lock_account_aliases(session, source.id)
    for merge in merges:
        chain = survivors(await repository.account_aliases(session, source.id, [merge.survivor_id]))
        if chain.get(merge.survivor_id, merge.survivor_id) == merge.merged_id:
            refused.append(
                Unsupported(
                    f"merging account {merge.merged_id!r} into {merge.survivor_id!r} would "
                    f"close a cycle: {merge.survivor_id!r} was merged into {merge.merged_id!r}",
                    json.loads(json.dumps(merge.__dict__, default=str)),
                )
            )
            continue
        await repository.add_account_alias(
            session,
            AccountAlias(
                source_id=source.id,
                merged_id=merge.merged_id,
                survivor_id=merge.survivor_id,
                merged_at=merge.occurred_at,
                event_key=merge.event_key,
            ),
        )
        recorded.append(merge)
    return recorded, refused


def _repoint(alias: AccountAlias, deal_crm_id: str, survivor: str) -> DealChange:
    return DealChange(
        crm_id=deal_crm_id,
        event_key=f"{alias.event_key}:account:{deal_crm_id}",
        occurred_at=alias.merged_at,
        op="updated",
        fields={"account_id": survivor},
    )


async def repointed(
    sessions: async_sessionmaker[AsyncSession], source: SourceIn, merges: Sequence[AccountMerged]
) -> list[DealChange]:
    """One update per deal now on a merged account, moving it to the last survivor at the
    time of the merge: a late change from before the merge is older, so it never moves
    the deal back. Call once the aliases are committed."""
    if not merges:
        return []
    out: list[DealChange] = []
    async with sessions() as session:
        merged = [m.merged_id for m in merges]
        aliases = await repository.account_aliases(session, source.id, merged)
        last = survivors(aliases)
        for alias in (a for a in aliases if a.merged_id in merged):
            deal_ids = await repository.deals_with_account(
                session,
                event_source=event_source(source),
                account_id=qualified(source, alias.merged_id),
                deal_types=(CREATED, UPDATED),
            )
            out.extend(
                _repoint(alias, crm_id, last[alias.merged_id])
                for crm_id in filter(None, (unqualified(source, d) for d in deal_ids))
            )
    return out


def _accounts_named(source: SourceIn, rows: Iterable[LogRow]) -> list[tuple[str, str]]:
    """(deal, account) by the CRM's ids, for each stored deal row that sets an account."""
    out: list[tuple[str, str]] = []
    for row in rows:
        if row.type not in (CREATED, UPDATED):
            continue
        data: dict[str, Any] = json.loads(row.envelope_json)["data"]
        deal, account = data.get("deal_id"), data.get("account_id")
        if isinstance(deal, str) and isinstance(account, str):
            pair = (unqualified(source, deal), unqualified(source, account))
            if pair[0] is not None and pair[1] is not None:
                out.append((pair[0], pair[1]))
    return out


async def follow(
    sessions: async_sessionmaker[AsyncSession],
    writer: EventLogWriter,
    source: SourceIn,
    rows: Sequence[LogRow],
    to_row: Callable[[DealChange], LogRow | object],
) -> int:
    """After `rows` are durable: re-point each deal they put on an account merged
    meanwhile (see the module's docstring). Returns how many updates this stored."""
    stored = 0
    for _ in range(repository.MAX_MERGE_CHAIN):
        named = _accounts_named(source, rows)
        if not named:
            break
        async with sessions() as session:
            aliases = await repository.account_aliases(
                session, source.id, {account for _, account in named}
            )
        by_merged = {a.merged_id: a for a in aliases}
        last = survivors(aliases)
        rows = [
            row
            for deal, account in named
            if account in by_merged
            and isinstance(row := to_row(_repoint(by_merged[account], deal, last[account])), LogRow)
        ]
        if not rows:
            break
        stored += sum(await writer.append(list(rows)))
    return stored
