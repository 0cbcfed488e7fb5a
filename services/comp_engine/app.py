"""Assembly of the comp_engine service: the consumer that stores deal and reference facts,
the recalculation that turns them into ledger lines, and the comp API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from services.comp_engine.accounting import routes as accounting
from services.comp_engine.dead_letters import routes as dead_letters
from services.comp_engine.deals.history import StageNames
from services.comp_engine.deps import CompState
from services.comp_engine.dispatch import consumer_spec
from services.comp_engine.disputes import routes as disputes
from services.comp_engine.holds import routes as holds
from services.comp_engine.intake.repository import RECALC_CHANNEL
from services.comp_engine.ledger import routes as ledger
from services.comp_engine.plans import routes as plans
from services.comp_engine.recalc.recalculator import Recalculator
from services.comp_engine.recalc.wakeup import Wakeup, asyncpg_dsn
from services.comp_engine.simulate import routes as simulate
from services.comp_engine.simulate.workers import Workers
from services.comp_engine.statements import routes as statements
from shared.consumer import StoredOffsetConsumer
from shared.db import create_engine, create_sessionmaker, ping
from shared.service import ServiceSpec, ServiceState, build_app, supervise
from shared.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(settings: Settings) -> AsyncIterator[ServiceState]:
    engine = create_engine(
        settings.require_database_url(),
        application_name="salesops-comp-engine",
        pool_size=settings.db_pool_size,
    )
    names = StageNames.of(settings.won_stages, settings.lost_stages)
    consumer = StoredOffsetConsumer(
        engine=engine,
        bootstrap=settings.require_kafka(),
        spec=consumer_spec(names),
        max_records=settings.consumer_max_records,
        check_seconds=settings.broker_check_seconds,
    )
    recalculator = Recalculator(
        engine,
        names=names,
        poll_seconds=settings.comp_recalc_poll_seconds,
        round_seconds=settings.comp_recalc_round_seconds,
        wakeup=Wakeup(asyncpg_dsn(engine.url), RECALC_CHANNEL),
    )
    processes = settings.comp_simulate_processes
    workers = Workers(processes) if processes > 1 else None
    tasks = [
        asyncio.create_task(supervise("comp consumer", consumer.run), name="comp-consumer"),
        asyncio.create_task(
            supervise("comp recalculation", recalculator.run), name="comp-recalculation"
        ),
    ]

    async def database_ready() -> None:
        await ping(engine)

    async def consumer_ready() -> None:
        if tasks[0].done():
            raise RuntimeError("the consumer stopped")

    try:
        yield ServiceState(
            state=CompState(
                settings=settings,
                sessions=create_sessionmaker(engine),
                simulate_workers=workers,
            ),
            readiness={"comp_database": database_ready, "comp_consumer": consumer_ready},
        )
    finally:
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        await consumer.close()
        await engine.dispose()
        if workers is not None:
            await asyncio.to_thread(workers.close)


SPEC = ServiceSpec(
    name="comp_engine",
    title="salesops comp engine",
    routers=[
        plans.router,
        ledger.router,
        dead_letters.router,
        statements.router,
        holds.router,
        disputes.router,
        accounting.router,
        simulate.router,
    ],
    lifespan=lifespan,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or get_settings(), [SPEC], title=SPEC.title)
