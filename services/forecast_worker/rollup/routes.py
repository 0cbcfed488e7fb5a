"""GET /v1/forecast/rollup: each group's forecast against its quota, live or as of an instant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.forecast_worker.deps import CurrentConfig, ForecastReader, ReadSession, Stages
from services.forecast_worker.period_input import requested_period
from services.forecast_worker.rollup.compute import compute_rollup
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import CSV_COLUMNS, PeriodOut, Rollup
from shared.edge import GuardedRoute
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import csv_response, wants_csv
from shared.values import UtcDatetime

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)

DESCRIPTION = """\
Per (group, currency), over the deals whose close date lies in the period:
`closed_won` (won deals), `commit`, `best_case`, `pipeline`, `omitted` (open deals by their
own `forecast_category`, else their stage's from the configuration), the cumulative
`commit_plus_closed` and `best_case_plus_commit_plus_closed`, `weighted` (open deals'
amount x stage probability / 100) and `open_count`. An open deal whose stage or pipeline
the configuration does not know is counted under `unmapped` / `unmapped_count`, never
dropped. Lost deals add to nothing. Amounts in two currencies are never added: each
currency is its own row.

`as_of` (RFC 3339) answers from deal history: the version of each deal valid at that
instant, deleted ones excluded; without it, the deals as they are now. Either way the
configuration is today's. Groups: `rep` is the deal's owner; `team`, `manager` and
`region` are the owner's team, the team's manager and region on the hierarchy day, the
earlier of the instant's date and the period's last day (a rep who moved team later does
not restate the period). A deal whose owner has no assignment that day is in the `null`
group. `quota`: the quotas set inside the period of the rep (rep), the team (team), or the
sum of the teams' (manager, region). `attainment` = closed_won / quota, `gap_to_quota` =
quota - closed_won, `coverage` = (quota - closed_won) / (pipeline + best_case + commit);
ratios have 4 places and are null when undefined. Beside the numbers: the latest call
(rep groups only) and the latest adjustment per category of the rep or team, recorded at
or before the instant, in the row's currency. An `as_of` before any data answers no rows.
"""


@router.get(
    "/v1/forecast/rollup",
    response_model=Rollup,
    summary="The forecast roll-up per rep, team, manager or region (JSON or CSV)",
    description=DESCRIPTION,
    responses=TABLE_RESPONSES,
)
async def get_rollup(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    stages: Stages,
    period: PeriodQuery,
    group_by: GroupBy,
    as_of: Annotated[
        UtcDatetime | None, Query(description="Answer as things stood at this instant")
    ] = None,
    format: Format = None,
) -> Rollup | Response:
    span = requested_period(period, config, "query.period")
    rows = await compute_rollup(db, stages=stages, period=span, group_by=group_by, as_of=as_of)
    if wants_csv(request, format):
        return csv_response(CSV_COLUMNS, (r.model_dump(mode="json") for r in rows), None)
    return Rollup(
        period=PeriodOut(label=span.label, start=span.start, end=span.end),
        group_by=group_by,
        as_of=as_of,
        rows=rows,
    )
