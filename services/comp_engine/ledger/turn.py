"""The one turn every writer of ledger lines takes, from before its first line to its
commit: a recalculation posting, a period close paying out, an admin's adjustment.

Why one at a time:
- A BI tool reads the ledger incrementally by line id (`after_id`). Ids are drawn at
  insert, not at commit, so two writers committing in the other order would let a reader
  see line 11 before line 10 commits, and a reader keeping the highest id it saw would
  never read line 10. With writers taking turns, commit order is id order: a line that
  commits later has a higher id than every line a reader could already see.
- A period close and a recalculation: the recalculation computes outside its turn and,
  once in it, reads the closes again (`recalc/repository.closes_in_turn`). So it posts
  either before a close (which then pays its lines) or after it (into the first open
  period), never into a period that closed while it computed.

A hold placed or released takes it too: a close reads what is held twice (its payout,
then the lines its frozen statement shows held), which must agree.

The turn is a transaction-scoped advisory lock, held until commit or rollback. Writers
take it after any rep lock, and nothing they lock after it (their own reps' rows, the
close row) is held by anyone waiting for the turn, so it cannot deadlock; a recalculation
waits for it only once computed (computing again inside it only when a close was
approved meanwhile, which is rare).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

TURN_SPACE = 0x6C656467
"""The advisory lock's first key ('ledg'), apart from the reps' locks ('comp')."""

_TAKE = text("SELECT pg_advisory_xact_lock(:space, 0)")


async def take(db: AsyncConnection | AsyncSession) -> None:
    """Wait for the ledger's turn and keep it until this transaction ends."""
    await db.execute(_TAKE, {"space": TURN_SPACE})
