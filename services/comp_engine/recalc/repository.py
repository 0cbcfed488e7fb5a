"""What a recalculation reads and writes: the inputs of a set of reps, what their ledger
holds, the lines it posts, and the dirty marks it claims and clears."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Select,
    Text,
    and_,
    bindparam,
    column,
    delete,
    func,
    literal_column,
    select,
    text,
    tuple_,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.comp_engine.calc.bookings import DealState
from services.comp_engine.calc.engine import Waiting
from services.comp_engine.calc.inputs import (
    Assignment,
    FxRate,
    FxTable,
    Inputs,
    Payment,
    PlanVersion,
    Quota,
    ReportingLine,
)
from services.comp_engine.calc.lines import Kind, LineKey
from services.comp_engine.calc.posting import Posted, Posting
from services.comp_engine.deals.fields_json import decode_all
from services.comp_engine.deals.history import (
    StageNames,
    StoredChange,
    history_of_one,
    states,
    stored,
)
from services.comp_engine.intake.repository import (
    CHANGES,
    DEAL_REPS,
    DIRTY,
    PAYMENTS,
    QUOTAS,
    REP_TEAMS,
    TEAM_MANAGERS,
)
from services.comp_engine.ledger import turn
from services.comp_engine.models import (
    AssignmentRow,
    ComputedRepRow,
    FxRateRow,
    LedgerLineRow,
    PeriodCloseRow,
    PlanVersionRow,
    WaitingRow,
)
from services.comp_engine.plans.document import PlanDocument
from shared.db import table_of

ASSIGNMENTS = table_of(AssignmentRow)
FX = table_of(FxRateRow)
LEDGER = table_of(LedgerLineRow)
CLOSES = table_of(PeriodCloseRow)
COMPUTED = table_of(ComputedRepRow)
PLANS = table_of(PlanVersionRow)
WAITING = table_of(WaitingRow)
LOCK_SPACE = 0x636F6D70
"""The first key of the advisory locks that hold a rep for a recalculation ('comp')."""
KEY_COLUMNS = ("rep_id", "period", "kind", "rule", "deal_id", "booking", "role")


@dataclass(frozen=True, slots=True)
class Claim:
    """A dirty rep as this round read it: `version` is the mark's row version (`xmin`),
    which every later mark changes, so clearing by it never clears a newer mark."""

    rep_id: str
    version: str


async def claim_dirty(conn: AsyncConnection, *, limit: int) -> list[Claim]:
    """Up to `limit` dirty reps, longest dirty first, that no other recalculation holds.

    A rep is held by a transaction-scoped advisory lock, not a row lock: the consumer
    marking the same rep meanwhile writes its row without waiting for this round, and
    replicas skip reps another one holds. The locks are tried only on the `limit` rows
    the subquery picked (PostgreSQL does not push a volatile filter under a LIMIT)."""
    oldest = (
        select(DIRTY.c.rep_id, DIRTY.c.since, literal_column("xmin::text").label("version"))
        .order_by(DIRTY.c.since, DIRTY.c.rep_id)
        .limit(limit)
        .subquery()
    )
    stmt = (
        select(oldest.c.rep_id, oldest.c.version)
        .where(func.pg_try_advisory_xact_lock(LOCK_SPACE, func.hashtext(oldest.c.rep_id)))
        .order_by(oldest.c.since, oldest.c.rep_id)
    )
    return [Claim(r.rep_id, r.version) for r in await conn.execute(stmt)]


async def hold(conn: AsyncConnection, *, rep_ids: Collection[str]) -> None:
    """Wait for and take the reps' recalculation locks until the transaction ends: a bulk
    recompute posting beside the rounds, which would otherwise both post one difference.
    Rounds only try these locks, so taking them in order here cannot deadlock."""
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(:space, hashtext(r)) "
            "FROM (SELECT unnest(CAST(:reps AS text[])) AS r ORDER BY 1) AS held"
        ),
        {"space": LOCK_SPACE, "reps": sorted(rep_ids)},
    )


async def clear_dirty(conn: AsyncConnection, *, claims: Collection[Claim]) -> None:
    """Clear the marks these claims read, unless marked again since (a new version) or
    being marked right now (its row locked: that mark is about to commit a new version).
    Either way the rep stays dirty and is done again, and nothing here waits."""
    if not claims:
        return
    ordered = sorted(claims, key=lambda c: c.rep_id)
    read = values(column("rep_id", Text), column("version", Text), name="claimed").data(
        [(c.rep_id, c.version) for c in ordered]
    )
    unchanged = (
        select(DIRTY.c.rep_id)
        .join(
            read,
            and_(
                read.c.rep_id == DIRTY.c.rep_id,
                literal_column("dirty_reps.xmin::text") == read.c.version,
            ),
        )
        .with_for_update(of=DIRTY, skip_locked=True)
        .correlate(None)
        .scalar_subquery()
    )
    await conn.execute(delete(DIRTY).where(DIRTY.c.rep_id.in_(unchanged)))


@dataclass(frozen=True, slots=True)
class Shared:
    """The inputs every chunk of a bulk run reads whole: read once for all its chunks rather
    than once a chunk (the plans validated each time). A change to them during the run marks
    its reps dirty, so the rounds redo what an earlier read missed; closing a period marks
    nobody, so the closed periods are not among them: a chunk that posts reads them itself."""

    plans: dict[str, list[PlanVersion]]
    assignments: list[Assignment]
    reporting: list[ReportingLine]
    fx: FxTable


async def load_shared(conn: AsyncConnection) -> Shared:
    return Shared(
        plans=await _plans(conn),
        assignments=await load_assignments(conn),
        reporting=await load_reporting(conn),
        fx=FxTable(await _fx(conn)),
    )


async def without_parallel_plans(conn: AsyncConnection) -> None:
    """Plan the rest of the transaction without parallel workers and without JIT: for a
    worker's chunk, where the workers and PostgreSQL share the machine's cores and what
    counts is the CPU all of them spend. A large chunk's ledger read (`simulate.posted`,
    an unrestricted 100-rep chunk of 88k lines on bench_main_1m) crossed the JIT's cost
    threshold and went parallel: 0.94 s of server CPU, backend and workers, against 0.50 s
    this way, and its load 0.42 against 0.33 s, same results. A 40-rep chunk's reads plan
    as before (neither parallel nor compiled)."""
    await conn.execute(
        text(
            "SELECT set_config('jit', 'off', true),"
            " set_config('max_parallel_workers_per_gather', '0', true)"
        )
    )


async def load_inputs(
    conn: AsyncConnection,
    *,
    rep_ids: Collection[str],
    names: StageNames,
    shared: Shared | None = None,
) -> tuple[dict[str, list[DealState]], Inputs]:
    """The deals of `rep_ids` (and of everyone who ever reported to them), and every plan,
    assignment, reporting line and FX rate (`shared`, read here unless given): what
    `engine.compute` needs for these reps."""
    if shared is None:
        shared = await load_shared(conn)
    owners = sorted(set(rep_ids) | reports_under(shared.reporting, rep_ids))
    deal_ids = select(DEAL_REPS.c.deal_id).where(DEAL_REPS.c.rep_id.in_(owners))
    inputs = Inputs(
        plans=shared.plans,
        assignments=shared.assignments,
        quotas=await _quotas(conn, rep_ids=rep_ids),
        reporting=shared.reporting,
        fx=shared.fx,
        payments=await _payments(conn, deal_ids=deal_ids),
        closed_periods=await closed_periods(conn),
    )
    return await _histories(conn, owners=owners, names=names), inputs


_CHANGES_OF = (
    "SELECT deal_id, event_time, sequence::text, source, event_id, event_type, fields::text"
    f" FROM {CHANGES.fullname} WHERE deal_id = ANY(ARRAY("
    f"SELECT deal_id FROM {DEAL_REPS.fullname} WHERE rep_id = ANY($1::text[])))"
)
"""The deals as an array, not a semi-join (`deal_id IN (SELECT ...)`): the planner hashes
a semi-join's deals and scans every change of every deal, while an array's ids are looked
up in the deal_id index one by one. A chunk of ~18k deals of 396k changes (bench_sim_1m)
took 0.15-0.27 s of server CPU, spread on parallel workers, that way, and 0.12-0.14 s this
way (a manager's chunk of ~48k deals: 0.27-0.35 s against 0.25 s)."""


async def _histories(
    conn: AsyncConnection, *, owners: Sequence[str], names: StageNames
) -> dict[str, list[DealState]]:
    """The states of every deal of `owners`, read through the driver itself: a chunk is
    ~20k changes, and SQLAlchemy's rows and its JSON codec took half of reading them.
    Called after a SQLAlchemy statement of the transaction, which begins the driver's
    transaction (the adapter begins it lazily), so this read is inside it. The sequence
    comes as text: `int` of it costs less than the driver's `Decimal` of a numeric.

    A deal of one change (most of them) is folded from its row as it comes; the others
    keep their place in the result, in the order their deals first come, while their
    changes are gathered."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    rows = await driver.fetch(_CHANGES_OF, owners)
    count = Counter(row[0] for row in rows)
    found: dict[str, list[DealState]] = {}
    several: dict[str, list[StoredChange]] = defaultdict(list)
    for (deal_id, at, sequence, source, event_id, event_type, _), fields in zip(
        rows, decode_all([row[6] for row in rows]), strict=True
    ):
        if count[deal_id] == 1:
            found[deal_id] = history_of_one(
                at, sequence, source, event_id, event_type, fields, names
            )
        else:
            found[deal_id] = []
            several[deal_id].append(stored(at, int(sequence), source, event_id, event_type, fields))
    for deal_id, changes in several.items():
        found[deal_id] = states(changes, names)
    return found


def reports_under(reporting: Sequence[ReportingLine], rep_ids: Collection[str]) -> set[str]:
    """Everyone who ever reported to one of `rep_ids`, directly or through other managers:
    whose deals a roll-up of more than one level credits them for."""
    under: dict[str, set[str]] = defaultdict(set)
    for line in reporting:
        under[line.manager_id].add(line.rep_id)
    found: set[str] = set()
    frontier = list(rep_ids)
    while frontier:
        for rep in under.get(frontier.pop(), ()):
            if rep not in found:
                found.add(rep)
                frontier.append(rep)
    return found


async def _plans(conn: AsyncConnection) -> dict[str, list[PlanVersion]]:
    found: dict[str, list[PlanVersion]] = defaultdict(list)
    for row in await conn.execute(select(PLANS)):
        document = PlanDocument.model_validate(row.document)
        found[row.plan_id].append(
            PlanVersion(row.plan_id, row.version, row.effective_from, document)
        )
    return found


async def load_assignments(conn: AsyncConnection) -> list[Assignment]:
    rows = await conn.execute(select(ASSIGNMENTS).order_by(ASSIGNMENTS.c.id))
    return [Assignment(r.rep_id, r.plan_id, r.start, r.end, r.payout_currency) for r in rows]


async def _quotas(conn: AsyncConnection, *, rep_ids: Collection[str]) -> list[Quota]:
    rows = await conn.execute(select(QUOTAS).where(QUOTAS.c.rep_id.in_(sorted(rep_ids))))
    return [Quota(r.rep_id, r.period_start, r.period_end, r.amount, r.currency) for r in rows]


async def load_reporting(conn: AsyncConnection) -> list[ReportingLine]:
    """Rep -> manager lines from the rep's team changes and the team's manager changes."""
    teams = [(r.rep_id, r.effective_from, r.team_id) for r in await conn.execute(select(REP_TEAMS))]
    managers: dict[str, list[tuple[date, str | None]]] = defaultdict(list)
    for r in await conn.execute(select(TEAM_MANAGERS)):
        managers[r.team_id].append((r.effective_from, r.manager_id))
    by_rep: dict[str, list[tuple[date, str | None]]] = defaultdict(list)
    for rep_id, start, team_id in teams:
        by_rep[rep_id].append((start, team_id))
    lines = []
    for rep_id, spans in by_rep.items():
        spans.sort()
        for index, (start, team_id) in enumerate(spans):
            end = spans[index + 1][0] if index + 1 < len(spans) else None
            lines += _manager_spans(rep_id, start, end, sorted(managers.get(team_id or "", [])))
    return lines


def _manager_spans(
    rep_id: str, start: date, end: date | None, managers: Sequence[tuple[date, str | None]]
) -> list[ReportingLine]:
    found = []
    for index, (since, manager) in enumerate(managers):
        until = managers[index + 1][0] if index + 1 < len(managers) else None
        low = max(start, since)
        high = min(d for d in (end, until) if d is not None) if (end or until) else None
        if manager and (high is None or low < high):
            found.append(ReportingLine(rep_id, manager, low, high))
    return found


async def _fx(conn: AsyncConnection) -> list[FxRate]:
    return [FxRate(r.base, r.quote, r.day, r.rate) for r in await conn.execute(select(FX))]


async def _payments(conn: AsyncConnection, *, deal_ids: Select[tuple[str]]) -> list[Payment]:
    """Payments of the deals `deal_ids` selects: a subquery, not a list of ids, since a
    manager's reports can have more deals than a statement takes parameters (32,767)."""
    rows = await conn.execute(
        select(PAYMENTS).where(PAYMENTS.c.deal_id.in_(deal_ids.scalar_subquery()))
    )
    return [Payment(r.deal_id, r.invoice_id, r.paid_at, r.amount, r.currency) for r in rows]


async def closed_periods(conn: AsyncConnection) -> dict[str, datetime]:
    rows = await conn.execute(select(CLOSES).where(CLOSES.c.closed_at.is_not(None)))
    return {r.period: r.closed_at for r in rows}


async def closes_in_turn(conn: AsyncConnection) -> dict[str, datetime]:
    """Take the ledger's turn (`ledger/turn.py`) and read the closed periods in it: a close
    approved since the inputs were read is seen, and none can be approved before this
    transaction's lines are committed."""
    await turn.take(conn)
    return await closed_periods(conn)


ADMIN_CAUSE = "admin"
"""The cause of a comp admin's adjustment: a line the calculation neither expects nor
reverses, so recalculation leaves it out of what it compares."""


async def posted(conn: AsyncConnection, *, rep_ids: Collection[str]) -> list[Posted]:
    """What the ledger holds per key and currency for these reps, admins' adjustments aside."""
    columns = [LEDGER.c[name] for name in KEY_COLUMNS]
    stmt = (
        select(*columns, LEDGER.c.currency, func.sum(LEDGER.c.amount))
        .where(
            LEDGER.c.rep_id.in_(sorted(rep_ids)),
            LEDGER.c.cause.is_distinct_from(ADMIN_CAUSE),
        )
        .group_by(*columns, LEDGER.c.currency)
    )
    return [
        Posted(
            LineKey(r.rep_id, r.period, Kind(r.kind), r.rule, r.deal_id, r.booking, r.role),
            r[-1],
            r.currency,
        )
        for r in await conn.execute(stmt)
    ]


async def replace_waiting(
    conn: AsyncConnection, *, rep_ids: Collection[str], waiting: Sequence[Waiting]
) -> None:
    """Make the waits of `rep_ids` those of `waiting`: the others end, and one that goes on
    keeps its row (its id, which the dead-letter API names it by, and its `since`) with the
    latest reason."""
    rows = {(w.rep_id, w.subject): w.reason for w in waiting if w.rep_id in rep_ids}
    ended = delete(WAITING).where(WAITING.c.rep_id.in_(sorted(rep_ids)))
    if rows:
        # The waits that go on as two arrays, not a bind parameter per value: a chunk of a
        # bulk recompute can wait on more deals than a statement takes parameters.
        going_on = (
            func.unnest(
                bindparam("going_on_reps", [r for r, _ in rows], type_=ARRAY(Text)),
                bindparam("going_on_subjects", [s for _, s in rows], type_=ARRAY(Text)),
            )
            .table_valued("rep_id", "subject")
            .render_derived()
        )
        ended = ended.where(
            tuple_(WAITING.c.rep_id, WAITING.c.subject).not_in(
                select(going_on.c.rep_id, going_on.c.subject)
            )
        )
    await conn.execute(ended)
    if rows:
        stmt = insert(WAITING)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["rep_id", "subject"], set_={"reason": stmt.excluded.reason}
            ),
            [{"rep_id": r, "subject": s, "reason": why} for (r, s), why in sorted(rows.items())],
        )


async def record_computed(conn: AsyncConnection, *, rep_ids: Collection[str], today: date) -> None:
    """In the posting transaction: the reps' ledgers now hold what `today`'s computation
    gives (`ComputedRepRow`)."""
    if not rep_ids:
        return
    stmt = insert(COMPUTED)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["rep_id"],
            set_={"computed_for": stmt.excluded.computed_for, "computed_at": func.now()},
        ),
        [{"rep_id": r, "computed_for": today} for r in sorted(rep_ids)],
    )


async def forget_computed(conn: AsyncConnection, *, rep_ids: Collection[str]) -> None:
    """The reps' ledgers no longer follow their inputs (a recalculation failed)."""
    await conn.execute(delete(COMPUTED).where(COMPUTED.c.rep_id.in_(sorted(rep_ids))))


async def analyze_ledger(conn: AsyncConnection) -> None:
    """Refresh the ledger's planner statistics after a bulk post (`bulk._finished`)."""
    await conn.execute(text("ANALYZE comp.ledger_lines"))


_POSTED_COLUMNS = (*KEY_COLUMNS, "posted_period", "amount", "currency", "trace", "cause")


async def post(conn: AsyncConnection, *, postings: Sequence[Posting], cause: str) -> int:
    """Append the postings, in their order, in the ledger's turn (taken here too, so no
    caller can insert outside it; a transaction holding it already just holds it on);
    how many lines were posted.

    By `COPY`, through the driver: a first recompute posts ~900k lines, and while one
    chunk posts the others wait for the turn. Posting a 1M-credit seed with two processes
    took 210 s as parameter sets ("insertmanyvalues"), 179 s this way (124 s before there
    was a turn, when chunks inserted side by side). The rows, their traces serialised, are
    made before the turn is taken."""
    if not postings:
        return 0
    records = [
        (
            p.key.rep_id,
            p.key.period,
            p.key.kind.value,
            p.key.rule,
            p.key.deal_id,
            p.key.booking,
            p.key.role,
            p.posted_period,
            p.amount,
            p.currency,
            json.dumps(p.trace),
            cause,
        )
        for p in postings
    ]
    await turn.take(conn)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(
        LEDGER.name, schema_name=LEDGER.schema, columns=_POSTED_COLUMNS, records=records
    )
    return len(records)
