"""The forecast worker's consumer: which topics it reads and which handler takes each type.

The loop itself is the shared one (`shared.consumer`); the dead-letter replay route applies
through this same table, so a replayed event is handled exactly as a consumed one.
"""

from __future__ import annotations

from services.forecast_worker.activities import handler as activities
from services.forecast_worker.deals import handler as deals
from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.models import CONSUMER_TABLES
from shared import topics
from shared.consumer import ConsumerSpec
from shared.dispatch import Dispatch, Handler

GROUP_ID = "forecast_worker"
SUBSCRIBED = (topics.DEAL, topics.ACTIVITY)


def dispatch(rules: StageRules) -> Dispatch:
    """Deals first, then activities, then their deletions: the order every batch applies."""
    deal_events: Handler = deals.DealEvents(rules)
    return {
        **dict.fromkeys(deals.TYPES, deal_events),
        activities.LOGGED: activities.log_activities,
        activities.DELETED: activities.delete_activities,
    }


def consumer_spec(rules: StageRules) -> ConsumerSpec:
    return ConsumerSpec(
        name="forecast",
        group_id=GROUP_ID,
        client_id="forecast-worker",
        topics=SUBSCRIBED,
        tables=CONSUMER_TABLES,
        dispatch=dispatch(rules),
        handles="a deal or activity event",
    )
