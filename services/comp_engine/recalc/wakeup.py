"""How the recalculation learns that reps were marked dirty without polling for it: a
dedicated asyncpg connection LISTENs on the channel the marking transaction notifies on
commit (`intake.repository.mark_dirty`).

A notification only says "look now"; the dirty marks themselves are the truth, so a lost
notification costs at most one poll interval of the caller, never a change. That is why
a dropped connection is simply re-opened (with a pause) and reported as a wake-up: marks
committed while nobody listened are picked up by the round that follows.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncpg
from sqlalchemy.engine import URL

log = logging.getLogger("salesops.comp.recalc")


def asyncpg_dsn(url: URL) -> str:
    """A plain libpq DSN for asyncpg from the service's SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Wakeup:
    """LISTEN on `channel`, re-connecting after `retry_seconds` whenever the connection
    is lost; `wait` returns on a notification or after its timeout."""

    def __init__(self, dsn: str, channel: str, *, retry_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._channel = channel
        self._retry = retry_seconds
        self._signal = asyncio.Event()
        self.listening = asyncio.Event()
        """Set while the LISTEN is in place (tests and readiness wait on it)."""

    async def wait(self, seconds: float) -> bool:
        """Until a notification (or a reconnection) or `seconds`; whether woken.

        The signal is cleared on the way out, before the caller looks at the marks: a
        notification sent after that belongs to a commit the caller's next look may miss,
        and it sets the signal again."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._signal.wait(), seconds)
        woken = self._signal.is_set()
        self._signal.clear()
        return woken

    async def run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except Exception as exc:
                log.warning("comp recalculation wake-up connection failed: %s", exc)
            self.listening.clear()
            self._signal.set()  # marks may have been committed while nobody listened
            await asyncio.sleep(self._retry)

    async def _listen_once(self) -> None:
        """One connection's life: LISTEN until the server or the network drops it."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "salesops-comp-recalc-wakeup"}
        )
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._notified)
            self.listening.set()
            self._signal.set()  # anything marked before the LISTEN is looked at now
            while not lost.is_set() and not conn.is_closed():
                with suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._retry * 10)
                if not lost.is_set():
                    # A half-open TCP connection raises no termination: ask the server.
                    await asyncio.wait_for(conn.execute("SELECT 1"), self._retry * 10)
        finally:
            with suppress(Exception):
                await asyncio.wait_for(conn.close(), self._retry)
            if not conn.is_closed():
                conn.terminate()

    def _notified(self, *_args: object) -> None:
        self._signal.set()
