"""Where events reach the comp engine, inside the consumer's transaction: deal changes and
reference facts are stored, and the reps whose ledger they can move are marked dirty for
the recalculation (`recalc/`), which posts what changed. Nothing here computes money: a
batch stays cheap however many reps it touches, and a burst of changes to one rep is
recalculated once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.deals.history import StageNames, reps_named, wins
from services.comp_engine.intake import repository
from shared.dispatch import Applied
from shared.events import (
    CanonicalEvent,
    DealCancelled,
    DealCreated,
    DealDeleted,
    DealUpdated,
    InvoicePaid,
    QuotaSet,
    RepUpserted,
    TeamUpserted,
)

DEAL_TYPES = (
    "com.salesops.deal.created.v1",
    "com.salesops.deal.updated.v1",
    "com.salesops.deal.deleted.v1",
    "com.salesops.deal.cancelled.v1",
)
QUOTA_SET = "com.salesops.quota.set.v1"
INVOICE_PAID = "com.salesops.invoice.paid.v1"
REP_UPSERTED = "com.salesops.rep.upserted.v1"
TEAM_TYPES = ("com.salesops.team.upserted.v1", "com.salesops.team.upserted.v2")


def _facts(event: CanonicalEvent) -> dict[str, Any]:
    env = event.envelope
    return {"event_time": env.time, "event_source": env.source, "event_id": env.id}


async def apply_deals(
    conn: AsyncConnection, events: Sequence[CanonicalEvent], *, names: StageNames
) -> Applied:
    """Store the changes; mark the reps of the new ones' deals, if ever won (`won_deals`)."""
    rows = []
    pairs: set[tuple[str, str]] = set()
    for event in events:
        env, payload = event.envelope, event.payload
        assert isinstance(payload, DealCreated | DealUpdated | DealDeleted | DealCancelled)
        fields = _fields(payload)
        rows.append(
            {
                "source": env.source,
                "event_id": env.id,
                "deal_id": payload.deal_id,
                "event_type": env.type,
                "event_time": env.time,
                "sequence": env.sequence if env.sequence is not None else -1,
                "fields": fields,
            }
        )
        pairs |= {(payload.deal_id, rep) for rep in reps_named(fields)}
    fresh = await repository.insert_changes(conn, rows=_unique(rows, ("source", "event_id")))
    await repository.add_deal_reps(conn, pairs=pairs)
    counted = await won_deals(conn, deal_ids=set(fresh), names=names)
    reps = await repository.reps_of_deals(conn, deal_ids=counted)
    await repository.mark_dirty(conn, rep_ids=reps)
    return Applied(new=len(fresh), duplicates=len(events) - len(fresh))


def _fields(payload: DealCreated | DealUpdated | DealDeleted | DealCancelled) -> dict[str, Any]:
    """What a deal change stores: the fields it sets; a cancellation its own data, which
    `deals/history.py` reads as a cancellation, not as fields of the deal."""
    if isinstance(payload, DealDeleted):
        return {}
    if isinstance(payload, DealCancelled):
        return payload.model_dump(mode="json", exclude={"deal_id"})
    return payload.changed_fields()


async def won_deals(conn: AsyncConnection, *, deal_ids: set[str], names: StageNames) -> set[str]:
    """The deals, among these, that were ever won by a stored change (this batch's are
    stored already): only those have bookings, so a change to a deal never won (an open
    deal's amount or owner) posts nothing and marks nobody. Its first win marks its reps,
    every rep it ever named included, and so does anything after."""
    changes = await repository.stage_changes(conn, deal_ids=deal_ids)
    return {deal_id for deal_id, fields in changes if wins(fields, names)}


async def apply_quotas(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    rows = []
    for event in events:
        q = event.payload
        assert isinstance(q, QuotaSet)
        rows.append(
            {
                "quota_id": q.quota_id,
                "rep_id": q.rep_id,
                "team_id": q.team_id,
                "period_start": q.period_start,
                "period_end": q.period_end,
                "amount": q.amount,
                "currency": q.currency,
                **_facts(event),
            }
        )
    return await _reference(conn, repository.QUOTAS, ("quota_id",), rows, lambda r: [r["rep_id"]])


async def apply_payments(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    rows = []
    for event in events:
        p = event.payload
        assert isinstance(p, InvoicePaid)
        rows.append(
            {
                "invoice_id": p.invoice_id,
                "deal_id": p.deal_id,
                "amount": p.amount,
                "currency": p.currency,
                "paid_at": p.paid_at,
                **_facts(event),
            }
        )
    written = await repository.upsert_newest(
        conn, table=repository.PAYMENTS, keys=("invoice_id",), rows=_newest(rows, ("invoice_id",))
    )
    deals = {r["deal_id"] for r in rows if r["deal_id"]}
    await repository.mark_dirty(conn, rep_ids=await repository.reps_of_deals(conn, deal_ids=deals))
    return Applied(new=written, duplicates=len(events) - written)


async def apply_reps(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    rows = []
    for event in events:
        r = event.payload
        assert isinstance(r, RepUpserted)
        start = r.effective_from or _day(event)
        rows.append(
            {"rep_id": r.rep_id, "effective_from": start, "team_id": r.team_id, **_facts(event)}
        )
    keys = ("rep_id", "effective_from")
    return await _reference(conn, repository.REP_TEAMS, keys, rows, lambda r: [r["rep_id"]])


async def apply_teams(conn: AsyncConnection, events: Sequence[CanonicalEvent]) -> Applied:
    rows = []
    for event in events:
        t = event.payload
        assert isinstance(t, TeamUpserted)
        start = t.effective_from or _day(event)
        rows.append(
            {
                "team_id": t.team_id,
                "effective_from": start,
                "manager_id": t.manager_id,
                **_facts(event),
            }
        )
    keys = ("team_id", "effective_from")
    return await _reference(conn, repository.TEAM_MANAGERS, keys, rows, lambda r: [r["manager_id"]])


async def _reference(
    conn: AsyncConnection,
    table: Table,
    keys: tuple[str, ...],
    rows: list[dict[str, Any]],
    reps: Callable[[dict[str, Any]], list[str | None]],
) -> Applied:
    written = await repository.upsert_newest(conn, table=table, keys=keys, rows=_newest(rows, keys))
    await repository.mark_dirty(conn, rep_ids={r for row in rows for r in reps(row) if r})
    return Applied(new=written, duplicates=len(rows) - written)


def _day(event: CanonicalEvent) -> date:
    return event.envelope.time.date()


def _unique(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(tuple(row[k] for k in keys), row)
    return list(seen.values())


def _newest(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per key, the newest event's (an upsert cannot touch a row twice)."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        order = (row["event_time"], row["event_source"], row["event_id"])
        held = best.get(key)
        if held is None or order > (held["event_time"], held["event_source"], held["event_id"]):
            best[key] = row
    return list(best.values())
