"""The dispute workflow's every transition, allowed and refused, for each kind of actor:
a comp admin, the disputant (the rep whose line it is, or the key that opened the dispute),
and another key that may see it (a manager of the rep)."""

from __future__ import annotations

import itertools

import pytest

from services.comp_engine.disputes.workflow import FINAL, Status, StepRefused, check_step

ADMIN = {"admin": True, "disputant": False}
DISPUTANT = {"admin": False, "disputant": True}
MANAGER = {"admin": False, "disputant": False}
ACTORS = {"admin": ADMIN, "disputant": DISPUTANT, "manager": MANAGER}

ALLOWED = {
    (Status.OPEN, Status.INFO_REQUESTED, "admin"),
    (Status.OPEN, Status.RESOLVED, "admin"),
    (Status.OPEN, Status.REJECTED, "admin"),
    (Status.OPEN, Status.WITHDRAWN, "disputant"),
    (Status.INFO_REQUESTED, Status.OPEN, "disputant"),
    (Status.INFO_REQUESTED, Status.OPEN, "manager"),
    (Status.INFO_REQUESTED, Status.RESOLVED, "admin"),
    (Status.INFO_REQUESTED, Status.REJECTED, "admin"),
    (Status.INFO_REQUESTED, Status.WITHDRAWN, "disputant"),
}
"""Every (from, to, actor) the workflow accepts; every other triple is refused."""

TRIPLES = list(itertools.product(Status, Status, ACTORS))


def refusal(current: Status, wanted: Status, actor: str) -> int | None:
    """The status `check_step` refuses with, None if it allows the step (with an
    adjustment exactly when resolving, so only the workflow and the actor decide)."""
    try:
        check_step(current, wanted, adjusts=wanted is Status.RESOLVED, **ACTORS[actor])
    except StepRefused as refused:
        return refused.status
    return None


@pytest.mark.parametrize(("current", "wanted", "actor"), sorted(ALLOWED))
def test_allowed_step(current: Status, wanted: Status, actor: str) -> None:
    assert refusal(current, wanted, actor) is None


@pytest.mark.parametrize(("current", "wanted", "actor"), [t for t in TRIPLES if t not in ALLOWED])
def test_refused_step(current: Status, wanted: Status, actor: str) -> None:
    """A final dispute, or a step to the state it is in (the only steps the workflow has
    no edge for), is a conflict (409) whoever asks; a step the workflow has but this actor
    may not take is forbidden (403)."""
    expected = 409 if current in FINAL or wanted is current else 403
    assert refusal(current, wanted, actor) == expected


@pytest.mark.parametrize("actor", ["admin", "manager"])
def test_only_the_disputant_withdraws(actor: str) -> None:
    """An admin closes a dispute by deciding it, a manager cannot drop their rep's: both
    are refused as actors (403), not as a workflow conflict, with the way out named."""
    with pytest.raises(StepRefused, match="resolves or rejects") as refused:
        check_step(Status.OPEN, Status.WITHDRAWN, adjusts=False, **ACTORS[actor])
    assert refused.value.status == 403


@pytest.mark.parametrize("current", [Status.OPEN, Status.INFO_REQUESTED])
def test_resolving_takes_an_adjustment_and_nothing_else_does(current: Status) -> None:
    with pytest.raises(StepRefused) as bare:
        check_step(current, Status.RESOLVED, adjusts=False, **ADMIN)
    assert bare.value.status == 422
    with pytest.raises(StepRefused) as adjusted:
        check_step(current, Status.REJECTED, adjusts=True, **ADMIN)
    assert adjusted.value.status == 422
    with pytest.raises(StepRefused) as withdrawn:
        check_step(current, Status.WITHDRAWN, adjusts=True, **DISPUTANT)
    assert withdrawn.value.status == 422


@pytest.mark.parametrize(("final", "actor"), list(itertools.product(sorted(FINAL), ACTORS)))
def test_a_final_dispute_says_so(final: Status, actor: str) -> None:
    with pytest.raises(StepRefused, match=f"is {final.value}; it takes no more steps"):
        check_step(final, Status.REJECTED, adjusts=False, **ACTORS[actor])
