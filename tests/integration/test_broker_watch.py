"""Whether the broker is away: any bootstrap server answering is enough, and one failed
probe (a stalled event loop on a loaded machine) is not an outage."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shared.embedded import free_port
from shared.kafka import _QUIET, BrokerAway, BrokerWatch, broker_reachable

pytestmark = pytest.mark.integration


@pytest.fixture
def closed() -> Iterator[str]:
    """A bootstrap server nobody listens on; the watch's muting of it is undone after."""
    server = f"127.0.0.1:{free_port()}"
    yield server
    _QUIET.away.clear()
    _QUIET.said.clear()


async def test_any_answering_bootstrap_server_is_enough(kafka_bootstrap: str, closed: str) -> None:
    await broker_reachable(f"{closed},{kafka_bootstrap}")
    with pytest.raises(ConnectionRefusedError):
        await broker_reachable(f"{closed}, {closed}")

    watch = BrokerWatch(f"{closed},{kafka_bootstrap}")
    for _ in range(3):
        await watch.probe()
    watch.check()
    assert not _QUIET.away, "aiokafka is not muted while a server answers"


async def test_away_takes_two_failed_probes_and_is_said_once(
    closed: str, caplog: pytest.LogCaptureFixture
) -> None:
    watch = BrokerWatch(closed)
    with caplog.at_level(logging.WARNING, logger="salesops.kafka"):
        await watch.probe()
        watch.check()  # one failed probe is not an outage
        assert closed in _QUIET.away, "aiokafka is muted from the first failed probe"
        assert not [r for r in caplog.records if "is unreachable" in r.message]
        for _ in range(3):
            await watch.probe()
        with pytest.raises(BrokerAway):
            watch.check()
    said = [r for r in caplog.records if "is unreachable" in r.message]
    assert len(said) == 1
