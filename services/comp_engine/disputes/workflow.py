"""The dispute workflow: which step may follow which, and who may take it. Pure.

open -> info_requested (an admin asks the rep for more) -> open (the rep answers);
from open or info_requested an admin resolves (with an adjustment) or rejects, and the
rep may withdraw. Resolved, rejected and withdrawn are final (Oracle's dispute states,
create / request info / approve / reject / withdraw)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OPEN = "open"
    INFO_REQUESTED = "info_requested"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


FINAL = frozenset({Status.RESOLVED, Status.REJECTED, Status.WITHDRAWN})
ADMIN_STEPS = frozenset({Status.INFO_REQUESTED, Status.RESOLVED, Status.REJECTED})
REP_STEPS = frozenset({Status.OPEN, Status.WITHDRAWN})
NEXT: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset(
        {Status.INFO_REQUESTED, Status.RESOLVED, Status.REJECTED, Status.WITHDRAWN}
    ),
    Status.INFO_REQUESTED: frozenset(
        {Status.OPEN, Status.RESOLVED, Status.REJECTED, Status.WITHDRAWN}
    ),
}


class StepRefused(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def check_step(current: Status, wanted: Status, *, admin: bool, adjusts: bool) -> None:
    """Raise `StepRefused` (409 for the workflow, 403 for the actor, 422 for what is
    missing) unless `wanted` may follow `current` for this actor."""
    if current in FINAL:
        raise StepRefused(409, f"the dispute is {current.value}; it takes no more steps")
    if wanted not in NEXT[current]:
        raise StepRefused(409, f"a dispute that is {current.value} cannot become {wanted.value}")
    if wanted in ADMIN_STEPS and not admin:
        raise StepRefused(403, f"only a comp admin may move a dispute to {wanted.value}")
    if wanted in REP_STEPS - {Status.WITHDRAWN} and admin:
        raise StepRefused(403, "only the rep answers a request for information")
    if (wanted is Status.RESOLVED) != adjusts:
        raise StepRefused(422, "resolving takes an adjustment, and only resolving does")
