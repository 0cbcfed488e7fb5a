"""The dispute workflow: which step may follow which, and who may take it. Pure.

open -> info_requested (an admin asks for more) -> open (the rep's side answers);
from open or info_requested an admin resolves (with an adjustment) or rejects, and the
disputant may withdraw. Resolved, rejected and withdrawn are final (Oracle's dispute states,
create / request info / approve / reject / withdraw).

Withdrawing is the disputant's act alone (the rep whose line it is, or the key that opened
the dispute for them): an admin who disagrees rejects, so the rep sees a decision with its
reason rather than a dispute dropped in their name, and a manager cannot drop a dispute
their rep raised."""

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


def check_step(
    current: Status, wanted: Status, *, admin: bool, disputant: bool, adjusts: bool
) -> None:
    """Raise `StepRefused` (409 for the workflow, 403 for the actor, 422 for what is
    missing) unless `wanted` may follow `current` for this actor: a comp admin (`admin`),
    the dispute's own side (`disputant`), or another key that may see it (a manager)."""
    if current in FINAL:
        raise StepRefused(409, f"the dispute is {current.value}; it takes no more steps")
    if wanted not in NEXT[current]:
        raise StepRefused(409, f"a dispute that is {current.value} cannot become {wanted.value}")
    if wanted in ADMIN_STEPS and not admin:
        raise StepRefused(403, f"only a comp admin may move a dispute to {wanted.value}")
    if wanted is Status.OPEN and admin:
        raise StepRefused(403, "only the rep answers a request for information")
    if wanted is Status.WITHDRAWN and (admin or not disputant):
        raise StepRefused(
            403,
            "only the rep who disputes (or the key that opened the dispute) withdraws it; "
            "a comp admin resolves or rejects it instead",
        )
    if (wanted is Status.RESOLVED) != adjusts:
        raise StepRefused(422, "resolving takes an adjustment, and only resolving does")
