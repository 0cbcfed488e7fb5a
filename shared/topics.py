"""Kafka topic names: the only coupling between services besides `shared/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEAL = "crm.deal.v1"
ACTIVITY = "crm.activity.v1"
REFERENCE = "crm.reference.v1"
# One record per broker incarnation. Its absence means the broker lost its state (the
# embedded broker keeps nothing across restarts) and the relay must republish the log.
INCARNATION = "salesops.broker-incarnation.v1"

DATA_TOPICS = (DEAL, ACTIVITY, REFERENCE)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


def all_topics(partitions: int) -> list[TopicSpec]:
    """Every topic the stack uses, as the relay creates them on a broker that lacks them."""
    data = [TopicSpec(t, partitions) for t in DATA_TOPICS]
    dead = [TopicSpec(dlq(t), partitions) for t in DATA_TOPICS]
    # The incarnation record must outlive any retention window: on a real Kafka a deleted
    # record would look like a broker that lost its state and cause a needless republish.
    sentinel = TopicSpec(INCARNATION, 1, {"retention.ms": "-1", "retention.bytes": "-1"})
    return [*data, *dead, sentinel]


HEADER_EVENT_SOURCE = "ce_source"
HEADER_EVENT_ID = "ce_id"
HEADER_EVENT_TYPE = "ce_type"
HEADER_LOG_SEQ = "salesops_log_seq"
