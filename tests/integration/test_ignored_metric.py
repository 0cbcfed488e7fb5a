"""The ignored-items metric counts a delivery once it is durable: a delivery whose events
could not be stored answers 503, and only the CRM's retry of it is counted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from services.pipeline_api.accounts.merges import AliasCache
from services.pipeline_api.crm.changes import CrmChange, DealChange, Ignored
from services.pipeline_api.events.event_log import EventLogWriter
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks.ingest import IngestOutcome, ingest
from shared.db import create_sessionmaker, driver_dsn
from shared.embedded import free_port
from shared.events import MAX_FUTURE

pytestmark = pytest.mark.integration


def ignored_count(kind: str) -> float:
    return REGISTRY.get_sample_value("salesops_webhook_ignored_total", {"kind": kind}) or 0.0


async def test_ignored_items_are_counted_only_once_their_delivery_is_stored(
    database_url: str,
) -> None:
    account = uuid.uuid4().hex[:10]
    kind = f"metric-{account}"
    source = SourceIn.model_validate(
        {"id": f"pd-{account}", "kind": "pipedrive", "account_id": account}
    )
    changes: list[CrmChange] = [
        Ignored("a custom field no source keeps"),
        DealChange(
            crm_id="1",
            event_key=f"k-{account}",
            occurred_at=datetime(2023, 1, 1, tzinfo=UTC),
            op="updated",
            fields={"name": "Stored"},
        ),
    ]
    engine = create_async_engine(database_url)
    sessions = create_sessionmaker(engine)
    away = EventLogWriter(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        on_commit=lambda: None,
        max_event_bytes=1 << 20,
    )
    working = EventLogWriter(
        driver_dsn(database_url), on_commit=lambda: None, max_event_bytes=1 << 20
    )
    away.start()
    working.start()

    async def deliver(writer: EventLogWriter) -> IngestOutcome:
        return await ingest(
            sessions=sessions,
            writer=writer,
            source=source,
            kind=kind,
            headers={},
            body=b"{}",
            changes=changes,
            max_future=MAX_FUTURE,
            alias_cache=AliasCache(sessions),
        )

    try:
        with pytest.raises(ConnectionRefusedError):
            await deliver(away)
        assert ignored_count(kind) == 0, "the delivery failed: its retry is the one to count"
        outcome = await deliver(working)
        assert (outcome.accepted, outcome.ignored) == (1, 1)
        assert ignored_count(kind) == 1
    finally:
        await away.stop()
        await working.stop()
        await engine.dispose()
