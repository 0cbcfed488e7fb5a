"""The comp engine's consumer: the deal and reference topics, and which handler takes each
type (`intake/handler.py`). Activities are the forecast's business and are not read."""

from __future__ import annotations

from services.comp_engine.intake import handler
from services.comp_engine.models import CONSUMER_TABLES
from shared import topics
from shared.consumer import ConsumerSpec
from shared.dispatch import Dispatch

GROUP_ID = "comp_engine"
SUBSCRIBED = (topics.DEAL, topics.REFERENCE)

DISPATCH: Dispatch = {
    **dict.fromkeys(handler.DEAL_TYPES, handler.apply_deals),
    handler.QUOTA_SET: handler.apply_quotas,
    handler.INVOICE_PAID: handler.apply_payments,
    handler.REP_UPSERTED: handler.apply_reps,
    **dict.fromkeys(handler.TEAM_TYPES, handler.apply_teams),
}

SPEC = ConsumerSpec(
    name="comp",
    group_id=GROUP_ID,
    client_id="comp-engine",
    topics=SUBSCRIBED,
    tables=CONSUMER_TABLES,
    dispatch=DISPATCH,
    handles="a deal or reference event",
)
