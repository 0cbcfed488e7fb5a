"""Assembly of the pipeline_api service: its resources, background relay, and routes."""

from __future__ import annotations

import asyncio
from asyncio import Task
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import httpx
from fastapi import FastAPI

from services.pipeline_api.accounts.merges import AliasCache
from services.pipeline_api.accounts.sweep import sweep_merges
from services.pipeline_api.crm.outbound import OutboundPolicy, guarded_client
from services.pipeline_api.deps import PipelineState
from services.pipeline_api.events.event_log import EventLogWriter
from services.pipeline_api.events.relay import Relay
from services.pipeline_api.events.routes import router
from services.pipeline_api.events.unpublishable_routes import router as unpublishable_router
from services.pipeline_api.resync.worker import ResyncWorker
from services.pipeline_api.sources.cache import SourceCache
from services.pipeline_api.sources.repository import list_sources
from services.pipeline_api.sources.routes import router as source_router
from services.pipeline_api.sources.secret_box import INFO_KEY, secret_box
from services.pipeline_api.webhooks.archive_routes import router as archive_router
from services.pipeline_api.webhooks.ingest import replay_due
from services.pipeline_api.webhooks.parked_routes import router as parked_router
from services.pipeline_api.webhooks.routes import router as webhook_router
from shared.db import create_engine, create_sessionmaker, driver_dsn, ping
from shared.kafka import BrokerWatch
from shared.service import ServiceSpec, ServiceState, build_app, supervise
from shared.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[ServiceState]:
    engine = create_engine(
        settings.require_database_url(),
        application_name="salesops-pipeline-api",
        pool_size=settings.db_pool_size,
    )
    bootstrap = settings.require_kafka()
    relay = Relay(
        engine=engine,
        bootstrap=bootstrap,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        broker_check_seconds=settings.broker_check_seconds,
        partitions=settings.topic_partitions,
        wedged_after=settings.broker_wedged_after,
        wedged_seconds=settings.broker_wedged_seconds,
        restart_file=settings.embedded_broker_restart_file,
    )
    broker = BrokerWatch(bootstrap)
    writer = EventLogWriter(
        driver_dsn(settings.require_database_url()),
        on_commit=relay.wake,
        max_event_bytes=settings.event_max_bytes,
        writers=settings.intake_writers,
    )
    writer.start()
    # The API answers while the broker is away: events wait in the log meanwhile.
    relay_task = asyncio.create_task(supervise("relay", relay.run), name="relay")
    watch_task = asyncio.create_task(supervise("broker watch", broker.run), name="broker-watch")
    sessions = create_sessionmaker(engine, info={INFO_KEY: secret_box(settings)})
    policy = OutboundPolicy.of(settings)
    http = guarded_client(policy, httpx.Timeout(30.0, connect=10.0))
    ahead = settings.event_max_future
    resyncs = ResyncWorker(
        sessions=sessions,
        writer=writer,
        http=http,
        policy=policy,
        lease_seconds=settings.resync_lease_seconds,
        max_future=ahead,
    )
    resync_task = asyncio.create_task(supervise("re-sync", resyncs.run), name="resync")

    def log_loop(name: str, loop: Callable[..., Awaitable[None]], **every: Any) -> Task[None]:
        """A supervised loop over the event log (`loop` takes sessions, writer, max_future)."""
        run = partial(loop, sessions=sessions, writer=writer, max_future=ahead, **every)
        return asyncio.create_task(supervise(name, run), name=name)

    due_task = log_loop("replay of due changes", replay_due, every=settings.future_replay_seconds)
    merge_task = log_loop(
        "merge sweep",
        sweep_merges,
        every=settings.merge_sweep_seconds,
        window=settings.merge_sweep_window,
    )

    async def database_ready() -> None:
        await ping(engine)

    async def sources_ready() -> None:
        """Every source's secrets open with the configured keys (a missing or wrong
        SALESOPS_SECRETS_KEYS would otherwise fail each webhook)."""
        async with sessions() as session:
            await list_sources(session)

    async def broker_ready() -> None:
        if relay_task.done():
            raise RuntimeError("relay stopped")
        broker.check()
        relay.check_wedged()

    try:
        yield ServiceState(
            state=PipelineState(
                settings=settings,
                sessions=sessions,
                writer=writer,
                relay=relay,
                sources=SourceCache(sessions),
                aliases=AliasCache(sessions),
                outbound=policy,
                resync_wake=resyncs.wake,
            ),
            readiness={
                "pipeline_database": database_ready,
                "pipeline_sources": sources_ready,
                "pipeline_broker": broker_ready,
            },
        )
    finally:
        for task in (relay_task, resync_task, due_task, merge_task, watch_task):
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        await http.aclose()
        await writer.stop()
        await engine.dispose()


SPEC = ServiceSpec(
    name="pipeline_api",
    title="salesops pipeline API",
    routers=[
        unpublishable_router,
        router,
        webhook_router,
        source_router,
        parked_router,
        archive_router,
    ],
    lifespan=lifespan,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or get_settings(), [SPEC], title=SPEC.title)
