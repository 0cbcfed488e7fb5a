"""Builders for commission tests: plan documents, assignments and deal histories in a line
each, so a worked example reads like its source."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from services.comp_engine.calc.bookings import DealState, SplitShare
from services.comp_engine.calc.inputs import Assignment, PlanVersion
from services.comp_engine.plans.document import PlanDocument


def plan(
    plan_id: str = "p",
    *,
    effective_from: date = date(2000, 1, 1),
    version: int = 1,
    **document: Any,
) -> PlanVersion:
    body: dict[str, Any] = {
        "name": plan_id,
        "currency": "USD",
        "period": "quarter",
        "target_variable": "0",
        "components": [flat_component("10")],
    }
    body.update(document)
    return PlanVersion(plan_id, version, effective_from, PlanDocument.model_validate(body))


def flat_component(
    rate: str, *, component_id: str = "c", basis: str = "period_amount", **extra: Any
) -> dict[str, Any]:
    return {
        "id": component_id,
        "rate_table": {"basis": basis, "tiers": [{"from": "0", "rate": rate}]},
        **extra,
    }


def tiers(*rows: tuple[str, str | None, str]) -> list[dict[str, Any]]:
    return [{"from": start, "to": end, "rate": rate} for start, end, rate in rows]


def assign(
    rep_id: str,
    plan_id: str = "p",
    start: date = date(2000, 1, 1),
    end: date | None = None,
    payout_currency: str | None = None,
) -> Assignment:
    return Assignment(rep_id, plan_id, start, end, payout_currency)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def state(
    day: date,
    status: str,
    amount: str | None,
    *,
    owner: str = "r1",
    currency: str = "USD",
    event_id: str | None = None,
    splits: list[tuple[str, str, str]] | None = None,
    hour: int = 12,
    close_date: date | None = None,
    cancelled: bool = False,
    **properties: Any,
) -> DealState:
    return DealState(
        at=at(day, hour),
        event_id=event_id or f"e-{day.isoformat()}-{hour}-{status}-{amount}",
        status=status,
        amount=None if amount is None else Decimal(amount),
        currency=currency,
        owner_id=owner,
        splits=tuple(SplitShare(r, Decimal(p), role) for r, p, role in splits or []),
        close_date=close_date or day,
        deal_type=properties.pop("deal_type", None),
        pipeline=properties.pop("pipeline", None),
        properties=properties,
        cancelled=cancelled,
    )


def won(day: date, amount: str, **kwargs: Any) -> list[DealState]:
    return [state(day, "won", amount, **kwargs)]
