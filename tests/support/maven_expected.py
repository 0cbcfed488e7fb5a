"""What the Maven CRM sample should look like once loaded, read straight from the CSV.

Deliberately independent of `services/datasets/maven.py`: its own few lines of CSV
reading, so a loader that drops, duplicates or misattributes a deal disagrees with it.
Metrics tests (win rate, cycle medians) read the same rows.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class PipelineRow:
    opportunity_id: str
    agent: str
    product: str
    account: str
    stage: str
    engage_date: date | None
    close_date: date | None
    close_value: Decimal | None


def pipeline_rows(directory: Path) -> list[PipelineRow]:
    with (directory / "sales_pipeline.csv").open(newline="", encoding="utf-8") as f:
        return [
            PipelineRow(
                r["opportunity_id"],
                r["sales_agent"],
                r["product"],
                r["account"],
                r["deal_stage"],
                date.fromisoformat(r["engage_date"]) if r["engage_date"] else None,
                date.fromisoformat(r["close_date"]) if r["close_date"] else None,
                Decimal(r["close_value"]) if r["close_value"] else None,
            )
            for r in csv.DictReader(f)
        ]


def agent_id(name: str) -> str:
    """The documented rep id: the agent's name in lower case, spaces as hyphens."""
    return "-".join(name.lower().split())


@dataclass(frozen=True)
class Expected:
    """`events`: one per rep, per manager's team, per deal, and one more per closed deal."""

    events: int
    deal_ids: frozenset[str]
    by_status: Counter[str]
    won_value: Decimal
    won_value_by_owner: dict[str, Decimal]


def expected(directory: Path) -> Expected:
    rows = pipeline_rows(directory)
    with (directory / "sales_teams.csv").open(newline="", encoding="utf-8") as f:
        teams = list(csv.DictReader(f))
    reference = len(teams) + len({t["manager"] for t in teams})
    status = {"Won": "won", "Lost": "lost", "Engaging": "open", "Prospecting": "open"}
    by_owner: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.stage == "Won" and row.close_value is not None:
            by_owner[agent_id(row.agent)] += row.close_value
    return Expected(
        events=reference + len(rows) + sum(row.stage in ("Won", "Lost") for row in rows),
        deal_ids=frozenset(row.opportunity_id for row in rows),
        by_status=Counter(status[row.stage] for row in rows),
        won_value=sum(by_owner.values(), Decimal(0)),
        won_value_by_owner=dict(by_owner),
    )
