"""The waterfall rows summed in the database: `flow.py`'s classification written as SQL.

Shipping every candidate with both its sides to Python and classifying each there took
longer than the query that finds them (88 k candidates for a quarter at a million deals).
Here each candidate's two sides are classified by the same rules as `flow.group_movements`
and `books.rows`, as conditions over one row, and the database returns one sum per
(group, currency, bucket). `flow.py` stays the definition: the deals endpoint still
classifies in Python, and a test holds this module to `books.rows` on generated histories.

Per candidate (`was` / `now`: in the period's open pipeline at `from` / `to`; `same`: its
(group, currency) is the same at both instants, or it did not exist at `from`; `passed`:
closed won or lost in the period at `to`, not already closed that way at `from`):

- `start` at the `from` key when `was`;
- its own key unchanged: `increased` / `decreased` by the amount change when `was`; an exit
  (`won`, `lost`, `pushed_out`) at its `to` amount when `was` and not `now`; an entry
  (`created`, `pulled_in`) at its `to` amount when not `was` but `now` or `passed`; and the
  close (`won` / `lost`) when neither `was` nor `now` but `passed`;
- its key changed: `moved_out` at its `from` amount from the `from` key when `was`;
  `moved_in` at its `to` amount into the `to` key when `now` or `passed`; and the close
  there when `passed` and not `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    Subquery,
    Text,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.forecast_worker.waterfall.books import Key
from services.forecast_worker.waterfall.flow import Bucket, Waterfall, Window
from services.forecast_worker.waterfall.repository import GroupBy, candidate_query

START = "start"
"""The pseudo-bucket of a deal's share of the row's starting pipeline."""


def _exists(c: Subquery, prefix: str) -> ColumnElement[bool]:
    return c.c[f"{prefix}_deal_id"].is_not(None)


def _holds(c: Subquery, prefix: str, window: Window) -> ColumnElement[bool]:
    close_date = c.c[f"{prefix}_close_date"]
    return and_(close_date >= window.start, close_date < window.end)


def _in_pipeline(c: Subquery, prefix: str, window: Window) -> ColumnElement[bool]:
    """`flow.in_pipeline`, false (never null) for a missing side."""
    live = and_(
        _exists(c, prefix),
        not_(c.c[f"{prefix}_deleted"]),
        c.c[f"{prefix}_status"] == "open",
        _holds(c, prefix, window),
    )
    return func.coalesce(live, false())


def _closed_in(c: Subquery, prefix: str, window: Window) -> ColumnElement[Any]:
    """`flow._closed_in`: 'won' or 'lost' for a deal closed that way in P, else null."""
    status = c.c[f"{prefix}_status"]
    closed = and_(
        not_(c.c[f"{prefix}_deleted"]), _holds(c, prefix, window), status.in_(("won", "lost"))
    )
    return case((closed, status))


def _same_key(c: Subquery) -> ColumnElement[bool]:
    """`books.entries`: a deal that did not exist at `from` takes its `to` key."""
    unchanged = and_(
        c.c.b_group.is_not_distinct_from(c.c.a_group),
        c.c.b_currency.is_not_distinct_from(c.c.a_currency),
    )
    return and_(_exists(c, "a"), or_(not_(_exists(c, "b")), unchanged))


def _classified(c: Subquery, window: Window) -> CTE:
    """Each candidate with the conditions its buckets depend on: a CTE, so the query
    finding the candidates runs once for all the rules."""
    closed_after, closed_before = _closed_in(c, "a", window), _closed_in(c, "b", window)
    passed = and_(closed_after.is_not(None), closed_after.is_distinct_from(closed_before))
    return select(
        c.c.b_group,
        c.c.b_currency,
        c.c.a_group,
        c.c.a_currency,
        _exists(c, "b").label("existed"),
        c.c.a_deleted,
        c.c.a_status,
        func.coalesce(c.c.b_amount, 0).label("before"),
        func.coalesce(c.c.a_amount, 0).label("after"),
        _in_pipeline(c, "b", window).label("was"),
        _in_pipeline(c, "a", window).label("now"),
        func.coalesce(passed, false()).label("passed"),
        closed_after.label("closed"),
        _same_key(c).label("same"),
    ).cte("classified")


@dataclass(frozen=True)
class _Rule:
    """Candidates meeting `when` put `amount` in `bucket` of their `side`'s row."""

    side: str
    bucket: ColumnElement[Any]
    amount: ColumnElement[Any]
    when: ColumnElement[bool]


def _rules(k: CTE) -> list[_Rule]:
    def bucket(name: str) -> ColumnElement[Any]:
        return literal(name, Text)

    was, now, passed, same = k.c.was, k.c.now, k.c.passed, k.c.same
    change = k.c.after - k.c.before
    entered = or_(now, passed)
    exit_bucket = case(
        (k.c.a_deleted, bucket(Bucket.LOST)),
        (k.c.a_status.in_(("won", "lost")), k.c.a_status),
        else_=bucket(Bucket.PUSHED_OUT),
    )
    change_bucket = case(
        (change > 0, bucket(Bucket.INCREASED)),
        else_=bucket(Bucket.DECREASED),
    )
    entry_bucket = case((k.c.existed, bucket(Bucket.PULLED_IN)), else_=bucket(Bucket.CREATED))
    return [
        _Rule("b", bucket(START), k.c.before, was),
        _Rule("a", change_bucket, func.abs(change), and_(same, was, change != 0)),
        _Rule("a", exit_bucket, k.c.after, and_(same, was, not_(now))),
        _Rule("a", entry_bucket, k.c.after, and_(same, not_(was), entered)),
        _Rule("a", k.c.closed, k.c.after, and_(same, not_(was), not_(now), passed)),
        _Rule("b", bucket(Bucket.MOVED_OUT), k.c.before, and_(not_(same), was)),
        _Rule("a", bucket(Bucket.MOVED_IN), k.c.after, and_(not_(same), entered)),
        _Rule("a", k.c.closed, k.c.after, and_(not_(same), not_(now), passed)),
    ]


def totals_query(
    *, window: Window, at_from: datetime, at_to: datetime, group_by: GroupBy | None
) -> Select[Any]:
    """The sum of every (group, currency, bucket) some candidate put something in, `start`
    included; one narrow aggregate, pivoted into rows by the caller."""
    c = candidate_query(
        start=window.start, end=window.end, at_from=at_from, at_to=at_to, group_by=group_by
    ).subquery("c")
    k = _classified(c, window)
    shares = union_all(
        *(
            select(
                k.c[f"{r.side}_group"].label("grp"),
                k.c[f"{r.side}_currency"].label("currency"),
                r.bucket.label("bucket"),
                r.amount.label("amount"),
            ).where(r.when)
            for r in _rules(k)
        )
    ).subquery("shares")
    key = (shares.c.grp, shares.c.currency, shares.c.bucket)
    return select(*key, func.sum(shares.c.amount).label("amount")).group_by(*key)


async def rows(
    session: AsyncSession, window: Window, at: tuple[datetime, datetime], group_by: GroupBy | None
) -> dict[Key, Waterfall]:
    """The same table as `books.rows` over the same candidates, summed in the database;
    `at` is (`from`, `to`)."""
    query = totals_query(window=window, at_from=at[0], at_to=at[1], group_by=group_by)
    out: dict[Key, Waterfall] = {}
    for grp, currency, bucket, amount in await session.execute(query):
        row = out.setdefault((grp, currency), Waterfall())
        if bucket == START:
            row.start = amount
        else:
            row.buckets[Bucket(bucket)] = amount
    return out
