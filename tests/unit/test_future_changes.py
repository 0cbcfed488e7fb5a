"""A CRM change dated beyond the allowed skew waits in the DLQ instead of freezing its deal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.pipeline_api.crm.changes import DealChange
from services.pipeline_api.crm.mapping import Parked
from services.pipeline_api.events.event_log import LogRow
from services.pipeline_api.sources.schemas import SourceIn
from services.pipeline_api.webhooks.ingest import to_row

MAX_BYTES = 64 * 1024
SKEW = timedelta(minutes=5)
SOURCE = SourceIn.model_validate(
    {"id": "hs", "kind": "hubspot", "account_id": "42", "mapping": {"owners": {"7": "rep-7"}}}
)


def change(occurred_at: datetime) -> DealChange:
    return DealChange(
        crm_id="1",
        event_key=f"k-{occurred_at.timestamp()}",
        occurred_at=occurred_at,
        op="updated",
        fields={"owner_id": "7"},
    )


def test_a_change_from_year_9000_is_parked_for_replay_not_stored() -> None:
    parked = to_row(
        SOURCE, change(datetime(9000, 1, 1, tzinfo=UTC)), max_bytes=MAX_BYTES, max_future=SKEW
    )
    assert isinstance(parked, Parked)
    assert parked.replayable
    assert parked.reason.startswith("dated in the future: time: 9000-01-01")


def test_a_change_within_the_skew_is_stored() -> None:
    now = datetime.now(UTC)
    soon = change(now + timedelta(minutes=4))
    assert isinstance(to_row(SOURCE, soon, max_bytes=MAX_BYTES, max_future=SKEW), LogRow)


def test_the_configured_skew_decides() -> None:
    later = change(datetime.now(UTC) + timedelta(minutes=30))
    assert isinstance(
        to_row(SOURCE, later, max_bytes=MAX_BYTES, max_future=timedelta(hours=1)), LogRow
    )
    assert isinstance(to_row(SOURCE, later, max_bytes=MAX_BYTES, max_future=timedelta(0)), Parked)
