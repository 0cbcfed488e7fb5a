"""The forecast worker under faults around the broker: a database error during a partition
assignment replaces the member instead of leaving it unwatched, and a broker that stays
away is reported once, not on every incarnation check."""

from __future__ import annotations

import logging

import pytest
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import create_async_engine

from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.dispatch import SUBSCRIBED, consumer_spec
from shared import topics
from shared.consumer import StoredOffsetConsumer
from shared.embedded import free_port
from shared.kafka import LayoutWatch, make_consumer
from shared.settings import Settings

pytestmark = pytest.mark.integration


def _worker(bootstrap: str) -> StoredOffsetConsumer:
    settings = Settings()
    return StoredOffsetConsumer(
        engine=create_async_engine("postgresql+asyncpg://unused@/unused"),
        bootstrap=bootstrap,
        spec=consumer_spec(StageRules.of(settings.won_stages, settings.lost_stages)),
        max_records=10,
        check_seconds=60,
    )


async def test_a_database_error_during_assignment_replaces_the_member(
    kafka_bootstrap: str,
) -> None:
    worker = _worker(kafka_bootstrap)
    consumer = make_consumer(kafka_bootstrap, group_id="unused", client_id="unused")
    worker._consumer = consumer
    worker._layout = layout = LayoutWatch(consumer, SUBSCRIBED)
    await worker._on_assigned({TopicPartition(topics.DEAL, 0)})  # the database is away
    assert layout._assigned_from is not None, "the layout watch still watches"
    assert worker._replace, "a member that could not seek from the store is replaced"


async def test_an_unreadable_incarnation_is_said_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = _worker(f"127.0.0.1:{free_port()}")  # nothing listens there
    worker.announced = "before"
    with caplog.at_level(logging.DEBUG, logger="salesops.forecast.consumer"):
        for _ in range(3):
            await worker._read_incarnation()
            assert worker.announced == "before", "what it knew is kept"
    said = [r for r in caplog.records if "cannot read the broker incarnation" in r.message]
    assert len(said) == 3
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
