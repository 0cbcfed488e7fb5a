"""Assembly of the forecast_worker service: the projection consumer and its read API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from services.forecast_worker.accuracy import routes as accuracy
from services.forecast_worker.calls import routes as calls
from services.forecast_worker.config import routes as config
from services.forecast_worker.config.replays import DeadLetterReplays
from services.forecast_worker.deals import routes as deals
from services.forecast_worker.deals.projection import StageRules
from services.forecast_worker.deps import ForecastState
from services.forecast_worker.dispatch import consumer_spec
from services.forecast_worker.hierarchy import routes as hierarchy
from services.forecast_worker.inspection import routes as inspection
from services.forecast_worker.metrics import routes as metrics
from services.forecast_worker.operations import routes as operations
from services.forecast_worker.projection import routes as projection
from services.forecast_worker.quotas import routes as quotas
from services.forecast_worker.rollup import routes as rollup
from services.forecast_worker.snapshots import routes as snapshots
from services.forecast_worker.snapshots import scheduler
from services.forecast_worker.summary import summariser
from services.forecast_worker.waterfall import routes as waterfall
from shared.consumer import StoredOffsetConsumer
from shared.db import create_engine, create_sessionmaker, ping
from shared.kafka import BrokerWatch
from shared.service import ServiceSpec, ServiceState, build_app, supervise
from shared.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[ServiceState]:
    engine = create_engine(
        settings.require_database_url(),
        application_name="salesops-forecast-worker",
        pool_size=settings.db_pool_size,
    )
    names = StageRules.of(settings.won_stages, settings.lost_stages)
    spec = consumer_spec(names)
    consumer = StoredOffsetConsumer(
        engine=engine,
        bootstrap=settings.require_kafka(),
        spec=spec,
        max_records=settings.consumer_max_records,
        check_seconds=settings.broker_check_seconds,
    )
    broker = BrokerWatch(settings.require_kafka())
    task = asyncio.create_task(
        supervise("forecast consumer", consumer.run), name="forecast-consumer"
    )
    watch_task = asyncio.create_task(supervise("broker watch", broker.run), name="broker-watch")
    sessions = create_sessionmaker(engine)
    replays = DeadLetterReplays(engine, spec, names)
    replay_task = asyncio.create_task(
        supervise("dead-letter replay", replays.run), name="dead-letter-replay"
    )

    async def take_snapshots() -> None:
        await scheduler.run(sessions, settings)

    snapshot_task = asyncio.create_task(
        supervise("snapshot scheduler", take_snapshots), name="snapshot-scheduler"
    )

    async def summarise() -> None:
        await summariser.run(sessions, settings)

    summary_task = asyncio.create_task(
        supervise("metrics summariser", summarise), name="metrics-summariser"
    )

    async def database_ready() -> None:
        await ping(engine)

    async def broker_ready() -> None:
        if task.done():
            raise RuntimeError("the consumer stopped")
        broker.check()

    try:
        yield ServiceState(
            state=ForecastState(
                settings=settings, sessions=sessions, consumer=spec, replays=replays
            ),
            readiness={"forecast_database": database_ready, "forecast_broker": broker_ready},
        )
    finally:
        for running in (task, watch_task, snapshot_task, summary_task, replay_task):
            running.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await running
        await consumer.close()
        await engine.dispose()


SPEC = ServiceSpec(
    name="forecast_worker",
    title="salesops forecast worker",
    routers=[
        deals.router,
        operations.router,
        config.router,
        calls.router,
        hierarchy.router,
        quotas.router,
        metrics.router,
        waterfall.router,
        rollup.router,
        inspection.router,
        snapshots.router,
        accuracy.router,
        projection.router,
    ],
    lifespan=lifespan,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or get_settings(), [SPEC], title=SPEC.title)
