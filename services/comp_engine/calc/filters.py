"""Which credits a component or SPIFF counts."""

from __future__ import annotations

from services.comp_engine.calc.credits import Credit
from services.comp_engine.plans.document import Filter


def matches(rule: Filter, credit: Credit) -> bool:
    state = credit.booking.state
    properties = state.properties or {}
    if rule.deal_types is not None and state.deal_type not in rule.deal_types:
        return False
    if rule.products is not None and properties.get("product") not in rule.products:
        return False
    if rule.pipelines is not None and state.pipeline not in rule.pipelines:
        return False
    return rule.properties is None or all(
        str(properties.get(k)) == v for k, v in rule.properties.items()
    )


def takes_all(rule: Filter) -> bool:
    """Whether `rule` matches every credit (it gives no field): most components count all
    of a segment's credits, and are then spared a test per credit."""
    return (
        rule.deal_types is None
        and rule.products is None
        and rule.pipelines is None
        and not rule.properties
    )
