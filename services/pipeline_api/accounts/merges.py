"""Account merges: a CRM merged one account into another, so its deals belong to the survivor.

A merge is remembered (`pipeline.account_aliases`), not only applied once: a deal change
that names the merged account, however late it comes, is mapped onto the survivor. Chains
(A into B, B into C) are followed in whatever order their merges arrive; a merge that
would close a cycle is refused and parked.

The aliases a delivery maps with come from `AliasCache`, so a delivery pays no database
round trip for them: every Pipedrive deal creation names an account, and reading the
aliases per delivery halved the webhook benchmark's Pipedrive rate. A merge recorded
through this process invalidates its source's entry at once; other replicas see it within
the cache's TTL.

The deals already in the log move by one `deal.updated` each, timed at the merge, stored
after the alias is committed. A deal change stored concurrently may have been mapped
before the alias was visible to it (in flight meanwhile, or read from a replica's cache
not yet expired), and its row may have been missed by the merge's look-up of the log:
the merge sweep (accounts/sweep.py) looks again for a while after each merge. The updates
both may make have the same id (the merge's key and the deal), so each is stored once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pipeline_api.accounts import repository
from services.pipeline_api.crm.changes import (
    AccountMerged,
    CrmChange,
    DealChange,
    Unsupported,
)
from services.pipeline_api.crm.mapping import (
    CREATED,
    UPDATED,
    event_source,
    qualified,
    unqualified,
)
from services.pipeline_api.models import AccountAlias
from services.pipeline_api.sources.schemas import SourceIn


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


ALIAS_TTL_SECONDS = 2.0
"""How long `AliasCache` keeps a source's aliases: a merge recorded by another replica is
missed this long at most (the merge sweep's window covers it)."""


class AliasCache:
    """Each source's merged accounts and their last survivors, read whole (the table holds
    a row per account merged away) and kept for `ttl` seconds; one read at a time per
    source, so an expiry under load costs one query, not one per delivery in flight."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = ALIAS_TTL_SECONDS
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._by_source: dict[str, tuple[float, dict[str, str]]] = {}
        self._reading: dict[str, asyncio.Lock] = {}
        self._generation = 0

    async def survivors_for(
        self, *, source: SourceIn, changes: Sequence[CrmChange]
    ) -> Mapping[str, str]:
        """The survivors of the source's merged accounts (none read when no deal change
        names an account)."""
        if all(_named(change) is None for change in changes):
            return {}
        fresh = self._fresh(source.id)
        if fresh is not None:
            return fresh
        async with self._reading.setdefault(source.id, asyncio.Lock()):
            fresh = self._fresh(source.id)
            if fresh is not None:
                return fresh
            generation, started = self._generation, time.monotonic()
            async with self._sessions() as session:
                every = survivors(
                    await repository.source_account_aliases(session, source_id=source.id)
                )
            if generation == self._generation:  # else a merge was recorded meanwhile
                self._by_source[source.id] = (started, every)
            return every

    def _fresh(self, source_id: str) -> dict[str, str] | None:
        cached = self._by_source.get(source_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def invalidate(self, source_id: str) -> None:
        """This process committed a merge of the source: its next delivery reads again,
        and a read already under way is not kept."""
        self._generation += 1
        self._by_source.pop(source_id, None)


async def record(
    session: AsyncSession, *, source: SourceIn, merges: Sequence[AccountMerged]
) -> tuple[list[AccountMerged], list[Unsupported]]:
    """Store the merges as aliases, in the caller's transaction and under the source's
    merge lock: (those recorded, those refused as closing a cycle)."""
    recorded: list[AccountMerged] = []
    refused: list[Unsupported] = []
    if not merges:
        return recorded, refused
    await repository.lock_account_aliases(session, source_id=source.id)
    for merge in merges:
        chain = survivors(
            await repository.account_aliases(
                session, source_id=source.id, account_ids=[merge.survivor_id]
            )
        )
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
            alias=AccountAlias(
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
    sessions: async_sessionmaker[AsyncSession], *, source: SourceIn, merged: Collection[str]
) -> list[DealChange]:
    """One update per deal now on one of the `merged` accounts, moving it to the last
    survivor at the time of the merge: a late change from before the merge is older, so
    it never moves the deal back. Call once the aliases are committed."""
    if not merged:
        return []
    out: list[DealChange] = []
    async with sessions() as session:
        aliases = await repository.account_aliases(session, source_id=source.id, account_ids=merged)
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
