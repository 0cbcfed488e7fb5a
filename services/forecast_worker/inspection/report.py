"""One page of the inspection from what the repository read: pure, so the required-field
check and the paging are tested without a database.

A page holds whole deals: `limit` counts flagged deals, never splitting one deal's rows,
and the cursor is the last deal id on the page (deals that break no rule take no room)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.forecast_worker.config.schemas import PROPERTY_PREFIX
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.inspection.repository import OpenRow
from services.forecast_worker.inspection.rules import OpenDeal, Thresholds, inspect
from services.forecast_worker.inspection.schemas import InspectionRow


@dataclass(frozen=True)
class Page:
    rows: list[InspectionRow]
    last_deal_id: str | None
    """Set when more flagged deals follow this page."""


def missing_fields(fields: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    """The required fields the deal has no value for: a null column, or an absent
    `properties.<key>` (a key present with a null value was set, to nothing, by the CRM)."""
    properties = fields.get("properties") or {}
    return [
        name
        for name in required
        if (
            name[len(PROPERTY_PREFIX) :] not in properties
            if name.startswith(PROPERTY_PREFIX)
            else fields.get(name) is None
        )
    ]


def inspection_page(
    deals: Iterable[OpenRow],
    *,
    stages: StageTable,
    median_days: Mapping[str, Decimal],
    now: datetime,
    thresholds: Thresholds,
    after: str | None,
    limit: int,
) -> Page:
    """The rows of the first `limit` flagged deals after `after`, `deals` in id order."""
    rows: list[InspectionRow] = []
    flagged = 0
    for deal in deals:
        if after is not None and deal.deal_id <= after:
            continue
        rule = stages.lookup(deal.pipeline, deal.stage)
        required = () if rule is None else rule.required_fields
        findings = inspect(
            OpenDeal(
                deal_id=deal.deal_id,
                stage=deal.stage,
                entered_stage_at=deal.entered_stage_at,
                close_date=deal.close_date,
                close_dates=deal.close_dates,
                missing_fields=missing_fields(deal.fields, required),
            ),
            now=now,
            median_days=median_days,
            thresholds=thresholds,
        )
        if not findings:
            continue
        if flagged == limit:
            return Page(rows, rows[-1].deal_id)
        flagged += 1
        rows.extend(
            InspectionRow(
                deal_id=f.deal_id,
                owner_id=deal.owner_id,
                stage=deal.stage,
                rule=f.rule,
                reason=f.reason,
            )
            for f in findings
        )
    return Page(rows, None)
