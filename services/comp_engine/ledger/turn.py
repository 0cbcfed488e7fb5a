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

The turn is a transaction-scoped advisory lock, held until commit or rollback. Writers
take it last, after any rep lock, and take no lock after it, so it cannot deadlock with
them; only the posting and the statements after it wait, not the computation before.
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
