"""The forecast worker's consumer: which topics it reads and which handler takes each type.

The loop itself is the shared one (`shared.consumer`); the dead-letter replay route applies
through this same table, so a replayed event is handled exactly as a consumed one.
"""

from __future__ import annotations

from services.forecast_worker.activities import handler as activities
from services.forecast_worker.deals import handler as deals
from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.hierarchy import handler as hierarchy
from services.forecast_worker.models import CONSUMER_TABLES
from services.forecast_worker.quotas import handler as quotas
from shared import topics
from shared.consumer import ConsumerSpec
from shared.dispatch import Dispatch, Handler

GROUP_ID = "forecast_worker"
SUBSCRIBED = (topics.DEAL, topics.ACTIVITY, topics.REFERENCE)
# On the reference topic, but the business of a later billing service, not the forecast's.
IGNORED = frozenset({"com.salesops.invoice.paid.v1"})


def dispatch(rules: StageRules) -> Dispatch:
    """Deals first, then activities, then their deletions, then the hierarchy and quotas:
    the order every batch applies."""
    deal_events: Handler = deals.DealEvents(rules)
    return {
        **dict.fromkeys(deals.TYPES, deal_events),
        activities.LOGGED: activities.log_activities,
        activities.DELETED: activities.delete_activities,
        **dict.fromkeys(hierarchy.TYPES, hierarchy.apply_hierarchy),
        quotas.QUOTA_SET: quotas.set_quotas,
    }


def consumer_spec(rules: StageRules) -> ConsumerSpec:
    return ConsumerSpec(
        name="forecast",
        group_id=GROUP_ID,
        client_id="forecast-worker",
        topics=SUBSCRIBED,
        tables=CONSUMER_TABLES,
        dispatch=dispatch(rules),
        handles="a deal, activity or reference event",
        ignores=IGNORED,
    )
