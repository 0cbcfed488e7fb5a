"""Who may see whose commission: a rep's key its own lines, statements, disputes and
assignments; a manager's key its own and those of every rep who ever reported to it (through
the teams it managed); comp admins everything. Another rep's data answers 404, as if it did
not exist, so a key learns nothing about reps it may not see.

A `comp:read` key bound to neither a rep nor a manager is on purpose an organisation-wide
read key: it sees every rep, which is how BI and finance tools read the whole ledger. Only a
binding scopes a reader. Like every reader it manages nothing (plans, adjustments, holds and
closes take `comp:admin`), and it cannot dispute (`check_may_dispute`): a dispute is the
rep's, raised by the rep, its manager or a comp admin, and answered by a comp admin."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.comp_engine.intake.repository import REP_TEAMS, TEAM_MANAGERS
from shared import auth
from shared.auth import Principal
from shared.problems import Problem


async def visible_reps(db: AsyncSession, principal: Principal) -> frozenset[str] | None:
    """The reps `principal` may see; `None` for every rep (a comp admin, or an unbound
    reader: the organisation-wide read key of BI and finance)."""
    if principal.allows(auth.COMP_ADMIN):
        return None
    if principal.rep_id is not None:
        return frozenset({principal.rep_id})
    if principal.manager_id is not None:
        reports = (
            select(REP_TEAMS.c.rep_id)
            .join(TEAM_MANAGERS, TEAM_MANAGERS.c.team_id == REP_TEAMS.c.team_id)
            .where(TEAM_MANAGERS.c.manager_id == principal.manager_id)
        )
        return frozenset({principal.manager_id, *(await db.scalars(reports))})
    return None


def check_visible(visible: frozenset[str] | None, rep_id: str, what: str) -> None:
    if visible is not None and rep_id not in visible:
        raise Problem(404, f"No {what} for rep {rep_id!r}.")


def reps_asked(
    visible: frozenset[str] | None, rep_id: str | None, what: str
) -> Collection[str] | None:
    """The reps a list filtered by `rep_id` reads: that rep (404 unless the key sees it),
    else every rep the key sees (`None` for all)."""
    if rep_id is None:
        return visible
    check_visible(visible, rep_id, what)
    return {rep_id}


def check_may_dispute(principal: Principal) -> None:
    """A dispute speaks for a rep: the rep's key, its manager's or a comp admin's opens and
    moves it, never the organisation-wide read key of a BI or finance tool."""
    if principal.allows(auth.COMP_ADMIN):
        return
    if principal.rep_id is None and principal.manager_id is None:
        raise Problem(
            403,
            "Disputes are opened and answered with a rep's, a manager's or a comp admin's "
            "key; this key is an organisation-wide read key bound to no rep or manager.",
        )
