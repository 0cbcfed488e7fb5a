"""A period label from a request, read with the configured fiscal calendar."""

from __future__ import annotations

from services.forecast_worker.config.schemas import ForecastConfig
from shared.periods import Period, parse_period
from shared.problems import Problem


def invalid_input(location: str, message: str) -> Problem:
    """A 422 naming the one input at fault (`query.period`, `body.as_of`)."""
    return Problem(
        422,
        "The request is not valid; see errors.",
        errors=[{"location": location, "message": message}],
    )


def requested_period(label: str, config: ForecastConfig, location: str) -> Period:
    """The period `label` names in the configured calendar; a 422 naming `location`
    (`query.period`, `body.period`), since the label is valid text but no period."""
    try:
        return parse_period(label, config.fiscal_year_start_month)
    except ValueError as exc:
        raise invalid_input(location, str(exc)) from exc
