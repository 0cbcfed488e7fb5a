"""SQL of account merges: the aliases, and the log's deals on a merged account."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.pipeline_api.models import CRM_ACCOUNT_EVENTS, AccountAlias


async def deals_with_account(
    session: AsyncSession, *, event_source: str, account_id: str, deal_types: Sequence[str]
) -> list[str]:
    """The deals of one event source whose account is now `account_id`, by the log's
    account-setting events ordered as the projection orders them (time, sequence, id).

    The pipeline's own log answers this, so a merge of accounts needs neither the
    projection's tables nor a full re-sync from the CRM. Both steps use an index
    (`ix_events_account`, then `ix_events_account_subject`): the deals that ever had the
    account, then each one's latest account.
    """
    rows = await session.execute(
        text(
            "SELECT c.deal_id FROM ("
            " SELECT DISTINCT subject AS deal_id FROM pipeline.events"
            f" WHERE source = :source AND {CRM_ACCOUNT_EVENTS}"
            "  AND (envelope->'data'->>'account_id') = :account AND type = ANY(:types)"
            ") c WHERE ("
            " SELECT e.envelope->'data'->>'account_id' FROM pipeline.events e"
            f" WHERE e.source = :source AND e.subject = c.deal_id AND {CRM_ACCOUNT_EVENTS}"
            "  AND e.type = ANY(:types)"
            " ORDER BY e.event_time DESC,"
            "  COALESCE((e.envelope->>'sequence')::numeric, -1) DESC, e.event_id DESC"
            " LIMIT 1"
            ") = :account ORDER BY c.deal_id"
        ),
        {"source": event_source, "types": list(deal_types), "account": account_id},
    )
    return list(rows.scalars())


async def lock_account_aliases(session: AsyncSession, *, source_id: str) -> None:
    """Serialise the merges of one source until the transaction ends, so two merges
    committed at once cannot together make a cycle."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"pipeline.account_aliases:{source_id}"},
    )


async def account_aliases(
    session: AsyncSession, *, source_id: str, account_ids: Iterable[str]
) -> list[AccountAlias]:
    """The merges of a source that start at one of `account_ids`, and those their
    survivors were merged by in turn (chains are followed; one indexed look-up a link)."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    rows = await session.execute(
        text(
            "WITH RECURSIVE chain AS ("
            " SELECT a.*, 1 AS depth FROM pipeline.account_aliases a"
            " WHERE a.source_id = :source AND a.merged_id = ANY(:ids)"
            " UNION"
            " SELECT a.*, c.depth + 1 FROM chain c JOIN pipeline.account_aliases a"
            "  ON a.source_id = :source AND a.merged_id = c.survivor_id"
            " WHERE c.depth < :max_depth"
            ") SELECT DISTINCT source_id, merged_id, survivor_id, merged_at, event_key"
            " FROM chain"
        ),
        {"source": source_id, "ids": ids, "max_depth": MAX_MERGE_CHAIN},
    )
    return [AccountAlias(**row) for row in rows.mappings()]


async def source_account_aliases(session: AsyncSession, *, source_id: str) -> list[AccountAlias]:
    """Every merge of a source (the table is small: one row per account merged away)."""
    rows = await session.scalars(select(AccountAlias).where(AccountAlias.source_id == source_id))
    return list(rows)


async def account_aliases_recorded_since(
    session: AsyncSession, *, within: timedelta | None
) -> list[AccountAlias]:
    """The merges of every source stored (or replaced) in the last `within`, by the
    database's clock (`ix_account_aliases_recorded_at`); all of them when `within` is None."""
    query = select(AccountAlias).order_by(AccountAlias.source_id, AccountAlias.merged_id)
    if within is not None:
        query = query.where(AccountAlias.recorded_at > func.now() - within)
    return list(await session.scalars(query))


MAX_MERGE_CHAIN = 100
"""How many merges a chain of accounts is followed through (a bound, not a CRM limit)."""


async def add_account_alias(session: AsyncSession, *, alias: AccountAlias) -> None:
    """Record a merge; a retry of it changes nothing, and of two merges of the same
    account the later one holds (the account was restored and merged again)."""
    values = {
        c.key: getattr(alias, c.key)
        for c in AccountAlias.__table__.columns
        if c.key != "recorded_at"
    }
    excluded = insert(AccountAlias).excluded
    await session.execute(
        insert(AccountAlias)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[AccountAlias.source_id, AccountAlias.merged_id],
            set_={
                "survivor_id": excluded.survivor_id,
                "merged_at": excluded.merged_at,
                "event_key": excluded.event_key,
                "recorded_at": func.now(),
            },
            where=excluded.merged_at > AccountAlias.merged_at,
        )
    )
