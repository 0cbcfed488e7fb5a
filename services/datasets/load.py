"""What `salesops dataset load DIR` sends: the dataset's events, with made-up history if
asked, each deal's events together and in time order (the intake does not need the order,
but a load then reads like the history it replays)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.datasets import maven
from services.datasets.canonical import midnight, slug
from services.datasets.generator import DealPlan, HistoryParams, deal_history


def plan_of(o: maven.Opportunity, price: Decimal) -> DealPlan:
    """A Maven deal as the generator sees it: open deals may change until the last date."""
    created = midnight(o.engage_date or maven.LAST_DATE)
    if o.close_date is not None and o.stage in ("Won", "Lost"):
        return DealPlan(
            o.opportunity_id,
            slug(o.agent),
            created,
            price,
            midnight(o.close_date),
            "won" if o.stage == "Won" else "lost",
        )
    return DealPlan(o.opportunity_id, slug(o.agent), created, price, midnight(maven.LAST_DATE))


def dataset_events(
    directory: Path, *, history_seed: int | None = None, params: HistoryParams = HistoryParams()
) -> list[dict[str, Any]]:
    """The whole load as a list (some 15,000 events without history): its length is the
    progress bar's total."""
    return list(_events(maven.read_dataset(directory), history_seed, params))


def _events(
    dataset: maven.Dataset, seed: int | None, params: HistoryParams
) -> Iterator[dict[str, Any]]:
    yield from maven.reference_events(dataset)
    reps = [rep.rep_id for rep in dataset.reps]
    for o in dataset.opportunities:
        price = dataset.prices[o.product]
        yield maven.created_event(o, price)
        history = []
        if seed is not None:
            history = deal_history(
                plan_of(o, price), seed=seed, reps=reps, params=params, source=maven.SOURCE
            )
        yield from (c.event for c in history if c.kind != "settle")
        closed = maven.closed_event(o)
        if closed is not None:
            yield closed
        yield from (c.event for c in history if c.kind == "settle")
