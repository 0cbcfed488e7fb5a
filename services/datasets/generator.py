"""Seeded synthetic deal history, and whole synthetic orgs for benchmarks at scale.

Real exports rarely carry what a forecast needs to explain itself (pushed and pulled-in
close dates, amount changes, category moves, reassignments): the Maven sample has none.
This makes them up, plausibly and reproducibly:

- **Seeded per deal.** Each deal draws from its own `random.Random(f"{seed}:{deal_id}")`,
  so a deal's history depends on the seed and the deal only: the same seed gives the same
  events whatever else is generated, in whatever order, and a stream needs no state.
- **Inside the deal's life.** Every change lies strictly after the deal's creation and
  strictly before its end (its close instant, or `until` for a deal still open), on a
  working hour, ordered by `sequence` too. The first change sets an expected close date
  and the `pipeline` category; a push moves the close date later, a pull-in earlier (and
  never into the past of the change that makes it).
- **Closing.** A closed deal whose history set a forecast category gets one more change at
  its close instant, after the close itself (`sequence` 2): category `closed` when won,
  `omitted` when lost, since a deal's explicit category overrides its stage's.
- **Ids** are `deal:<deal_id>:h<n>` under the caller's `source`: a reload is duplicates.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from services.datasets.canonical import (
    DEAL_CREATED,
    DEAL_UPDATED,
    Team,
    cloud_event,
    midnight,
    rep_event,
    team_event,
)

Outcome = Literal["won", "lost"]
ChangeKind = Literal[
    "expected_close",
    "push",
    "pull_in",
    "amount_up",
    "amount_down",
    "category",
    "reassign",
    "settle",
]
CATEGORIES = ("pipeline", "best_case", "commit")
SYNTHETIC_SOURCE = "app://synthetic-org"
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class HistoryParams:
    """How much happens to a deal; each probability is per change slot."""

    max_changes: int = 6
    push_probability: float = 0.3
    pull_in_probability: float = 0.08
    amount_probability: float = 0.2
    category_probability: float = 0.3
    reassign_probability: float = 0.04


@dataclass(frozen=True)
class DealPlan:
    """What is known of a deal before its history is made up."""

    deal_id: str
    owner_id: str
    created: datetime
    amount: Decimal
    end: datetime
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    event: dict[str, Any]


def _stamp(day: date, rng: random.Random) -> datetime:
    return midnight(day) + timedelta(hours=rng.randint(8, 17), minutes=rng.randint(0, 59))


def _instants(plan: DealPlan, rng: random.Random, count: int) -> list[datetime]:
    """`count` working-hour instants strictly inside (created, end), sorted, maybe fewer."""
    first = plan.created.date() + timedelta(days=1)
    last = plan.end.date() - timedelta(days=1)
    if last < first:
        return []
    span = (last - first).days
    return sorted(_stamp(first + timedelta(days=rng.randint(0, span)), rng) for _ in range(count))


@dataclass
class _Deal:
    """A deal's fields as its made-up history has left them so far."""

    close_date: date
    amount: Decimal
    owner: str
    category: int = 0

    def push(self, at: datetime, rng: random.Random) -> dict[str, Any]:
        self.close_date = max(self.close_date, at.date()) + timedelta(days=rng.randint(7, 45))
        return {"close_date": self.close_date}

    def pull_in(self, at: datetime, rng: random.Random) -> dict[str, Any] | None:
        earliest = at.date() + timedelta(days=1)
        earlier = max(earliest, self.close_date - timedelta(days=rng.randint(3, 21)))
        if earlier >= self.close_date:
            return None
        self.close_date = earlier
        return {"close_date": earlier}

    def reprice(self, rng: random.Random) -> dict[str, Any] | None:
        amount = (self.amount * Decimal(rng.randint(60, 150)) / 100).quantize(CENTS)
        if amount == self.amount or amount <= 0:
            return None
        self.amount = amount
        return {"amount": str(amount)}

    def recategorise(self, rng: random.Random) -> dict[str, Any] | None:
        step = 1 if rng.random() < 0.75 else -1
        moved = min(max(self.category + step, 0), len(CATEGORIES) - 1)
        if moved == self.category:
            return None
        self.category = moved
        return {"forecast_category": CATEGORIES[moved]}

    def reassign(self, rng: random.Random, reps: Sequence[str]) -> dict[str, Any] | None:
        others = [r for r in reps if r != self.owner]
        if not others:
            return None
        self.owner = rng.choice(others)
        return {"owner_id": self.owner}


def _change(
    deal: _Deal, at: datetime, rng: random.Random, reps: Sequence[str], params: HistoryParams
) -> tuple[ChangeKind, dict[str, Any]] | None:
    """Draw what happens at `at` (often nothing) and apply it to `deal`."""
    roll = rng.random()
    if (roll := roll - params.push_probability) < 0:
        return "push", deal.push(at, rng)
    if (roll := roll - params.pull_in_probability) < 0:
        pulled = deal.pull_in(at, rng)
        return ("pull_in", pulled) if pulled else None
    if (roll := roll - params.amount_probability) < 0:
        before = deal.amount
        repriced = deal.reprice(rng)
        if repriced is None:
            return None
        return ("amount_up" if deal.amount > before else "amount_down"), repriced
    if (roll := roll - params.category_probability) < 0:
        moved = deal.recategorise(rng)
        return ("category", moved) if moved else None
    if roll - params.reassign_probability < 0:
        reassigned = deal.reassign(rng, reps)
        return ("reassign", reassigned) if reassigned else None
    return None


def deal_history(
    plan: DealPlan,
    *,
    seed: int,
    reps: Sequence[str],
    params: HistoryParams = HistoryParams(),
    source: str,
) -> list[Change]:
    """The made-up changes of one deal, in time order: an expected close date first."""
    rng = random.Random(f"{seed}:{plan.deal_id}")
    instants = _instants(plan, rng, rng.randint(1, params.max_changes))
    if not instants:
        return []
    first = instants[0]
    deal = _Deal(first.date() + timedelta(days=rng.randint(14, 75)), plan.amount, plan.owner_id)
    opening = {"close_date": deal.close_date, "forecast_category": CATEGORIES[0]}
    changes: list[tuple[ChangeKind, datetime, dict[str, Any]]] = [
        ("expected_close", first, opening)
    ]
    for at in instants[1:]:
        change = _change(deal, at, rng, reps, params)
        if change is not None:
            changes.append((change[0], at, change[1]))
    result = [
        Change(kind, _update(plan.deal_id, data, time=at, n=n, sequence=n, source=source))
        for n, (kind, at, data) in enumerate(changes, start=1)
    ]
    if plan.outcome is not None:
        settled = {"forecast_category": "closed" if plan.outcome == "won" else "omitted"}
        n = len(changes) + 1
        settle = _update(plan.deal_id, settled, time=plan.end, n=n, sequence=2, source=source)
        result.append(Change("settle", settle))
    return result


def _update(
    deal_id: str, data: dict[str, Any], *, time: datetime, n: int, sequence: int, source: str
) -> dict[str, Any]:
    body = {
        "deal_id": deal_id,
        **{k: v.isoformat() if isinstance(v, date) else v for k, v in data.items()},
    }
    return cloud_event(
        DEAL_UPDATED, body, time=time, source=source, id=f"deal:{deal_id}:h{n}", sequence=sequence
    )


def history_events(
    plans: Iterable[DealPlan],
    *,
    seed: int,
    reps: Sequence[str],
    params: HistoryParams = HistoryParams(),
    source: str,
) -> Iterator[dict[str, Any]]:
    for plan in plans:
        for change in deal_history(plan, seed=seed, reps=reps, params=params, source=source):
            yield change.event


FIRST_NAMES = (
    "Ada", "Bruno", "Chen", "Dara", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Barros", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ito", "Jansen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov",
)  # fmt: skip
REGIONS = ("East", "West", "Central", "EMEA", "APAC")
PRODUCTS = (("Core", 1200), ("Plus", 4800), ("Suite", 18000), ("Enterprise", 60000))
REPS_PER_TEAM = 8


@dataclass(frozen=True)
class OrgParams:
    """The shape of a synthetic org: dates, outcomes, and how much its deals change."""

    start: date = date(2025, 1, 1)
    end: date = date(2026, 1, 1)
    win_probability: float = 0.35
    loss_probability: float = 0.4
    history: HistoryParams = HistoryParams()


def _person(rng: random.Random, n: int) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} {n}"


def synthetic_org(
    seed: int, reps: int, deals: int, *, params: OrgParams = OrgParams()
) -> Iterator[dict[str, Any]]:
    """A whole org as a stream: teams (a manager and a region each), reps, then each deal's
    creation, history and close. Memory stays constant in `deals`; ids are numbered, names
    are drawn, so the same seed gives the same org."""
    if reps < 1 or deals < 0:
        raise ValueError("an org needs at least one rep and a non-negative number of deals")
    rng = random.Random(seed)
    team_count = max(1, -(-reps // REPS_PER_TEAM))
    teams = [Team(_person(rng, t), REGIONS[t % len(REGIONS)]) for t in range(team_count)]
    for team in teams:
        yield team_event(team, effective_from=params.start, source=SYNTHETIC_SOURCE)
    rep_ids = [f"rep-{r:06d}" for r in range(reps)]
    for r, rep_id in enumerate(rep_ids):
        yield rep_event(
            rep_id,
            _person(rng, r),
            teams[r % team_count].team_id,
            effective_from=params.start,
            source=SYNTHETIC_SOURCE,
        )
    horizon = midnight(params.end)
    days = max(1, (params.end - params.start).days - 1)
    for d in range(deals):
        deal_rng = random.Random(f"{seed}:org:{d}")
        yield from _synthetic_deal(deal_rng, seed, f"deal-{d:08d}", rep_ids, horizon, days, params)


def _synthetic_deal(
    rng: random.Random,
    seed: int,
    deal_id: str,
    rep_ids: Sequence[str],
    horizon: datetime,
    days: int,
    params: OrgParams,
) -> Iterator[dict[str, Any]]:
    product, price = rng.choice(PRODUCTS)
    owner = rng.choice(rep_ids)
    created = _stamp(horizon.date() - timedelta(days=rng.randint(1, days)), rng)
    amount = Decimal(price)
    closes = midnight(created.date() + timedelta(days=max(1, int(rng.lognormvariate(3.8, 0.5)))))
    roll = rng.random()
    outcome: Outcome | None = None
    if closes < horizon and roll < params.win_probability + params.loss_probability:
        outcome = "won" if roll < params.win_probability else "lost"
    data = {
        "deal_id": deal_id,
        "name": f"{product} {deal_id}",
        "owner_id": owner,
        "account_id": f"acct-{rng.randint(0, 10 * len(rep_ids)):07d}",
        "amount": str(amount),
        "currency": "USD",
        "stage": "Engaging",
        "pipeline": "default",
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }
    yield cloud_event(
        DEAL_CREATED,
        data,
        time=created,
        source=SYNTHETIC_SOURCE,
        id=f"deal:{deal_id}:created",
        sequence=0,
    )
    plan = DealPlan(deal_id, owner, created, amount, closes if outcome else horizon, outcome)
    history = deal_history(
        plan, seed=seed, reps=rep_ids, params=params.history, source=SYNTHETIC_SOURCE
    )
    settle = [c.event for c in history if c.kind == "settle"]
    yield from (c.event for c in history if c.kind != "settle")
    if outcome is None:
        return
    won_amount = data["amount"]
    for change in history:
        won_amount = change.event["data"].get("amount", won_amount)
    closed = {
        "deal_id": deal_id,
        "stage": "Won" if outcome == "won" else "Lost",
        "status": outcome,
        "close_date": closes.date().isoformat(),
    }
    if outcome == "won":
        closed["amount"] = won_amount
    yield cloud_event(
        DEAL_UPDATED,
        closed,
        time=closes,
        source=SYNTHETIC_SOURCE,
        id=f"deal:{deal_id}:closed",
        sequence=1,
    )
    yield from settle
