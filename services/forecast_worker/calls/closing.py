"""When a period stops taking calls and adjustments. Pure, no I/O."""

from __future__ import annotations

from datetime import date

from shared.periods import Period


def is_closed(period: Period, today: date) -> bool:
    """Whether `period` is closed on `today` (a UTC date): once its last day is over.

    A call or adjustment for a closed period is refused (409): the numbers it would change
    have been reported. This is the rule until periods are closed by a workflow of their
    own; that workflow replaces this function, and the routes ask only it.
    """
    return today >= period.end
