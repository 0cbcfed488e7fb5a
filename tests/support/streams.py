"""Event streams for end-to-end runs: from the real CRM dataset, or synthetic and seeded.

Both add what CRMs really do to a stream: redeliveries (exact duplicates) and reordering
(later versions of a deal arriving before earlier ones).
"""

from __future__ import annotations

import csv
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.events import CREATED, DELETED, UPDATED, event

PRICES = {
    "GTX Basic": "550",
    "GTX Pro": "4821",
    "GTXPro": "4821",
    "MG Special": "55",
    "MG Advanced": "3393",
    "GTX Plus Pro": "5482",
    "GTX Plus Basic": "1096",
    "GTK 500": "26768",
}


def _at(day: str, hour: int) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + timedelta(
        hours=hour
    )


def dataset_stream(dataset_dir: Path, deals: int, *, seed: int) -> list[dict[str, Any]]:
    """Lifecycles of real opportunities: created, engaged, amount revised, won or lost."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    with open(dataset_dir / "sales_pipeline.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["engage_date"] and r["close_date"]]
    out: list[dict[str, Any]] = []
    for row in rng.sample(rows, deals):
        deal = f"e2e-{run}-{row['opportunity_id']}"
        price = PRICES.get(row["product"], "1000")
        engage = row["engage_date"]
        out.append(
            event(
                CREATED,
                {
                    "deal_id": deal,
                    "name": f"{row['account'] or 'Unknown'} {row['product']}",
                    "owner_id": row["sales_agent"],
                    "account_id": row["account"] or None,
                    "amount": price,
                    "currency": "USD",
                    "stage": "Prospecting",
                    "created_at": f"{engage}T00:00:00Z",
                    "deal_type": "new_business",
                },
                time=_at(engage, 0),
            )
        )
        out.append(
            event(
                UPDATED,
                {"deal_id": deal, "stage": "Engaging", "forecast_category": "pipeline"},
                time=_at(engage, 1),
            )
        )
        out.append(
            event(
                UPDATED,
                {
                    "deal_id": deal,
                    "amount": f"{price}.50",
                    "properties": {"product": row["product"]},
                },
                time=_at(engage, 1),
                sequence=1,
            )
        )
        won = row["deal_stage"] == "Won"
        out.append(
            event(
                UPDATED,
                {
                    "deal_id": deal,
                    "stage": "won" if won else "lost",
                    "amount": row["close_value"] if won else f"{price}.50",
                    "close_date": row["close_date"],
                    "forecast_category": "closed" if won else "omitted",
                },
                time=_at(row["close_date"], 12),
            )
        )
    return out


def synthetic_stream(deals: int, updates: int, *, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for n in range(deals):
        deal = f"syn-{run}-{n}"
        t = start + timedelta(minutes=rng.randrange(0, 10_000))
        out.append(
            event(
                CREATED,
                {
                    "deal_id": deal,
                    "name": f"Deal {n}",
                    "owner_id": f"rep-{n % 7}",
                    "amount": "1000",
                    "currency": "EUR",
                    "stage": "new",
                },
                time=t,
            )
        )
        for _ in range(updates):
            t += timedelta(minutes=rng.randrange(0, 3))  # repeats make exact-time ties
            field = rng.choice(["amount", "stage", "close_date", "owner_id"])
            value = {
                "amount": f"{rng.randrange(1, 10**6)}.{rng.randrange(100):02d}",
                "stage": rng.choice(["new", "proposal", "negotiation", "closedwon", "closedlost"]),
                "close_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
                "owner_id": f"rep-{rng.randrange(7)}",
            }[field]
            out.append(
                event(
                    UPDATED,
                    {"deal_id": deal, field: value},
                    time=t,
                    sequence=rng.choice([None, 1, 2]),
                )
            )
        if rng.random() < 0.1:
            out.append(event(DELETED, {"deal_id": deal}, time=t + timedelta(minutes=1)))
    return out


def as_delivered(
    events: list[dict[str, Any]], *, duplicates: int, seed: int
) -> list[dict[str, Any]]:
    """Shuffle (so later versions often come first) and add exact redeliveries."""
    rng = random.Random(seed)
    delivered = list(events) + [rng.choice(events) for _ in range(duplicates)]
    rng.shuffle(delivered)
    return delivered
