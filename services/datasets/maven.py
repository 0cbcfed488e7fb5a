"""The Maven Analytics "CRM + Sales Opportunities" sample as canonical events.

Pure: the CSV files in, events out (`../shared/datasets/crm_sales_opportunities/README.md`
describes the files and their quirks). The data has no history, only each deal's current
stage and two dates, so every choice below is what the loader decides, stated once:

- **Reps and teams.** One `rep.upserted` per row of `sales_teams.csv`, `rep_id` = slug of
  the agent's name; one team per manager, `team_id` = `manager_id` = slug of the manager's
  name. Both take effect on 2016-10-01 (`FIRST_DATE`, the first day of the month of the
  first engagement) so every deal finds its owner's team. The regional office is the
  team's region: `canonical.team_event` says where it goes.
- **Deals.** `deal_id` = `opportunity_id`. `deal.created` at `engage_date` 00:00Z
  (`created_at` the same) in stage `Engaging`, pipeline "default", `amount` = the
  product's list price from `products.csv` in USD (the data has no amount on open deals),
  `owner_id` = slug of the agent, `account_id` = slug of the account, absent when the
  account is blank (1,425 open deals), `name` = "product for account" (the product alone
  without an account). No `close_date` while open: the data has no expected close date.
- **Closing.** Won and lost deals get a `deal.updated` at `close_date` 00:00Z: stage
  `Won`/`Lost`, the matching `status`, `close_date`, and `amount = close_value` when won
  (a lost deal keeps its list price: `close_value` is 0 there).
- **Prospecting rows** have no dates at all: created at the dataset's last date,
  2017-12-31 00:00Z (`LAST_DATE`), in stage `Prospecting`, list price, no close date.
- **Quirks.** "GTXPro" is "GTX Pro" (`PRODUCT_SPELLINGS`); any other product not in
  `products.csv`, an agent not in `sales_teams.csv`, an unknown stage or a won deal
  without a close value stops the load with the row's id (`DatasetError`), rather than
  loading a guess.
- **Idempotence.** `source` is "app://maven-crm" and every id is derived from the row
  (`deal:<id>:created`, `deal:<id>:closed`, `rep:<slug>:<date>`, `team:<slug>:<date>`), so a
  second load is all duplicates. `sequence` 0 on creation and 1 on closing orders them at
  the same instant, should a deal ever engage and close on one day.

`services/datasets/load.py` puts the events in the order they are sent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from services.datasets.canonical import (
    DEAL_CREATED,
    DEAL_UPDATED,
    Team,
    cloud_event,
    midnight,
    rep_event,
    slug,
    team_event,
)

SOURCE = "app://maven-crm"
FIRST_DATE = date(2016, 10, 1)
LAST_DATE = date(2017, 12, 31)
CURRENCY = "USD"
PIPELINE = "default"
PRODUCT_SPELLINGS = {"GTXPro": "GTX Pro"}

Stage = Literal["Prospecting", "Engaging", "Won", "Lost"]
STAGES: tuple[Stage, ...] = ("Prospecting", "Engaging", "Won", "Lost")


class DatasetError(ValueError):
    """The files say something the loader has no documented treatment for."""


@dataclass(frozen=True)
class Rep:
    name: str
    team: Team

    @property
    def rep_id(self) -> str:
        return slug(self.name)


@dataclass(frozen=True)
class Opportunity:
    opportunity_id: str
    agent: str
    product: str
    account: str | None
    stage: Stage
    engage_date: date | None
    close_date: date | None
    close_value: Decimal | None


@dataclass(frozen=True)
class Dataset:
    reps: tuple[Rep, ...]
    prices: dict[str, Decimal]
    opportunities: tuple[Opportunity, ...]

    @property
    def teams(self) -> tuple[Team, ...]:
        return tuple(dict.fromkeys(rep.team for rep in self.reps))


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def read_dataset(directory: Path) -> Dataset:
    """Read the three files the events need, refusing what the loader cannot place."""
    reps = tuple(
        Rep(row["sales_agent"], Team(row["manager"], row["regional_office"]))
        for row in _rows(directory / "sales_teams.csv")
    )
    prices = {
        row["product"]: Decimal(row["sales_price"]) for row in _rows(directory / "products.csv")
    }
    agents = {rep.name for rep in reps}
    opportunities = tuple(
        _opportunity(row, prices, agents) for row in _rows(directory / "sales_pipeline.csv")
    )
    return Dataset(reps, prices, opportunities)


def _opportunity(row: dict[str, str], prices: dict[str, Decimal], agents: set[str]) -> Opportunity:
    oid = row["opportunity_id"]
    product = PRODUCT_SPELLINGS.get(row["product"], row["product"])
    if product not in prices:
        raise DatasetError(f"{oid}: product {row['product']!r} is not in products.csv")
    if row["sales_agent"] not in agents:
        raise DatasetError(f"{oid}: sales agent {row['sales_agent']!r} is not in sales_teams.csv")
    stage = row["deal_stage"]
    if stage not in STAGES:
        raise DatasetError(f"{oid}: deal_stage {stage!r} is not one of {', '.join(STAGES)}")
    opportunity = Opportunity(
        opportunity_id=oid,
        agent=row["sales_agent"],
        product=product,
        account=row["account"] or None,
        stage=stage,
        engage_date=_date(row["engage_date"]),
        close_date=_date(row["close_date"]),
        close_value=Decimal(row["close_value"]) if row["close_value"] else None,
    )
    _check_dates(opportunity)
    return opportunity


def _check_dates(o: Opportunity) -> None:
    closed = o.stage in ("Won", "Lost")
    if closed and (o.engage_date is None or o.close_date is None):
        raise DatasetError(f"{o.opportunity_id}: a {o.stage} deal needs engage_date and close_date")
    if o.stage == "Won" and o.close_value is None:
        raise DatasetError(f"{o.opportunity_id}: a won deal needs a close_value")
    if o.stage == "Engaging" and o.engage_date is None:
        raise DatasetError(f"{o.opportunity_id}: an Engaging deal needs an engage_date")


def reference_events(dataset: Dataset) -> Iterator[dict[str, Any]]:
    for team in dataset.teams:
        yield team_event(team, effective_from=FIRST_DATE, source=SOURCE)
    for rep in dataset.reps:
        yield rep_event(
            rep.rep_id, rep.name, rep.team.team_id, effective_from=FIRST_DATE, source=SOURCE
        )


def created_event(o: Opportunity, price: Decimal) -> dict[str, Any]:
    created = midnight(o.engage_date or LAST_DATE)
    data: dict[str, Any] = {
        "deal_id": o.opportunity_id,
        "name": f"{o.product} for {o.account}" if o.account else o.product,
        "owner_id": slug(o.agent),
        "amount": str(price),
        "currency": CURRENCY,
        "stage": "Prospecting" if o.stage == "Prospecting" else "Engaging",
        "pipeline": PIPELINE,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }
    if o.account:
        data["account_id"] = slug(o.account)
    return cloud_event(
        DEAL_CREATED,
        data,
        time=created,
        source=SOURCE,
        id=f"deal:{o.opportunity_id}:created",
        sequence=0,
    )


def closed_event(o: Opportunity) -> dict[str, Any] | None:
    """The update that closes a won or lost deal; None for a deal still open."""
    if o.stage not in ("Won", "Lost") or o.close_date is None:
        return None
    won = o.stage == "Won"
    data: dict[str, Any] = {
        "deal_id": o.opportunity_id,
        "stage": o.stage,
        "status": "won" if won else "lost",
        "close_date": o.close_date.isoformat(),
    }
    if won:
        data["amount"] = str(o.close_value)
    return cloud_event(
        DEAL_UPDATED,
        data,
        time=midnight(o.close_date),
        source=SOURCE,
        id=f"deal:{o.opportunity_id}:closed",
        sequence=1,
    )
