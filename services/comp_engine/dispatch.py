"""The comp engine's consumer: the deal and reference topics, and which handler takes each
type (`intake/handler.py`). Activities are the forecast's business and are not read."""

from __future__ import annotations

from functools import partial

from services.comp_engine.deals.history import StageNames
from services.comp_engine.intake import handler
from services.comp_engine.models import CONSUMER_TABLES
from shared import topics
from shared.consumer import ConsumerSpec
from shared.dispatch import Dispatch

GROUP_ID = "comp_engine"
SUBSCRIBED = (topics.DEAL, topics.REFERENCE)


def consumer_spec(names: StageNames) -> ConsumerSpec:
    """The consumer, with the won and lost stages that tell which deals count."""
    dispatch: Dispatch = {
        **dict.fromkeys(handler.DEAL_TYPES, partial(handler.apply_deals, names=names)),
        handler.QUOTA_SET: handler.apply_quotas,
        handler.INVOICE_PAID: handler.apply_payments,
        handler.REP_UPSERTED: handler.apply_reps,
        **dict.fromkeys(handler.TEAM_TYPES, handler.apply_teams),
    }
    return ConsumerSpec(
        name="comp",
        group_id=GROUP_ID,
        client_id="comp-engine",
        topics=SUBSCRIBED,
        tables=CONSUMER_TABLES,
        dispatch=dispatch,
        handles="a deal or reference event",
    )
