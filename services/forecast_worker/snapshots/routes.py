"""Take snapshots of the roll-up (now, as of a past instant, or a range of them) and read
the trend across them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from services.forecast_worker.config.repository import load_config
from services.forecast_worker.config.stages import StageTable
from services.forecast_worker.deps import (
    CurrentConfig,
    ForecastReader,
    ForecastWriter,
    ReadSession,
    Sessions,
    SettingsDep,
    Stages,
    WriteSession,
)
from services.forecast_worker.period_input import invalid_input, requested_period
from services.forecast_worker.rollup.repository import GroupBy
from services.forecast_worker.rollup.schemas import PeriodOut
from services.forecast_worker.snapshots import repository
from services.forecast_worker.snapshots.repository import Frozen
from services.forecast_worker.snapshots.schedule import range_count, range_instants
from services.forecast_worker.snapshots.schemas import (
    MAX_BACKFILL_SLOTS,
    MAX_TREND_PAGE,
    TREND_CSV_COLUMNS,
    BackfillIn,
    BackfillOut,
    Kind,
    SnapshotHeader,
    SnapshotIn,
    SnapshotOut,
    Trend,
    TrendPoint,
)
from shared.edge import GuardedRoute
from shared.periods import Period, midnight
from shared.problems import Problem, problem_responses
from shared.query_params import TABLE_RESPONSES, Format, PeriodQuery
from shared.tables import (
    MAX_ID,
    csv_response,
    decode_instant_id_cursor,
    encode_cursor,
    wants_csv,
)
from shared.values import UtcDatetime

router = APIRouter(tags=["forecast"], route_class=GuardedRoute)


TREND_DESCRIPTION = """\
The period's snapshots in order of `as_of` (then id), each with the roll-up rows of
`group_by` as they stood at its instant: the same rows and columns as
`GET /v1/forecast/rollup?as_of=`. Snapshots are taken weekly (`SALESOPS_SNAPSHOT_WEEKDAY`,
00:00 UTC) and at each period end (`kind` `weekly`, `period_end`), on demand
(`on_demand`) and backfilled for past instants (`backfill`). `from`/`to` bound `as_of`
(inclusive). Pages hold whole snapshots: `limit` of them (default 100), then
`next_cursor` (in CSV, the `X-Next-Cursor` header) for the next page's `cursor`. CSV is
long: one line per (snapshot, group, currency).
"""


def _period_out(period: Period) -> PeriodOut:
    return PeriodOut(label=period.label, start=period.start, end=period.end)


def _snapshot_out(frozen: Frozen, period: PeriodOut) -> SnapshotOut:
    header = SnapshotHeader.model_validate(frozen.header)
    return SnapshotOut(**header.model_dump(), period=period, rows=frozen.rows)


def _csv_lines(snapshots: Iterable[Frozen]) -> Iterator[dict[str, Any]]:
    for frozen in snapshots:
        header = SnapshotHeader.model_validate(frozen.header).model_dump(mode="json")
        header["snapshot_id"] = header.pop("id")
        for group_by, rows in frozen.rows.items():
            for row in rows:
                yield {**header, "group_by": group_by, **row.model_dump(mode="json")}


@router.post(
    "/v1/forecast/snapshots",
    status_code=201,
    response_model=SnapshotOut,
    summary="Freeze the roll-up of a period now, or as of a past instant (a backfill)",
    description="Every grouping (rep, team, manager, region) is frozen, computed as "
    "`GET /v1/forecast/rollup?as_of=` at the instant. With `as_of` the snapshot is a "
    "`backfill`, taken once: when the period already has a snapshot at that instant (of "
    "any kind: a weekly or period-end one too, as a backfill range skips it) the stored "
    "one is answered with 200. An `as_of` in the future is refused; one before any data "
    "freezes empty rows.",
    responses={
        200: {
            "model": SnapshotOut,
            "description": "The period had a snapshot at that instant: the first stored one",
        },
        **problem_responses(422),
    },
)
async def post_snapshot(
    principal: ForecastWriter,
    db: WriteSession,
    config: CurrentConfig,
    stages: Stages,
    body: SnapshotIn,
    response: Response,
) -> SnapshotOut:
    period = requested_period(body.period, config, "body.period")
    now = datetime.now(UTC)
    if body.as_of is not None and body.as_of > now:
        raise invalid_input("body.as_of", "as_of must not be in the future")
    if body.as_of is not None:
        before = await repository.list_snapshots(
            db, period=period, group_by=None, since=body.as_of, until=body.as_of
        )
        if before:
            response.status_code = 200
            return _snapshot_out(before[0], _period_out(period))
    kind: Kind = "on_demand" if body.as_of is None else "backfill"
    as_of = body.as_of or now
    header = await repository.take_snapshot(
        db, stages=stages, period=period, as_of=as_of, kind=kind, taken_by=principal.key_id
    )
    if header is None:
        response.status_code = 200
    found = await repository.list_snapshots(
        db, period=period, group_by=None, since=as_of, until=as_of, kind=kind
    )
    return _snapshot_out(found[-1], _period_out(period))


@router.post(
    "/v1/forecast/snapshots/backfill",
    status_code=201,
    response_model=BackfillOut,
    summary="Backfill a period's snapshots for past days, weekly or daily, from history",
    description="Takes a `backfill` snapshot at 00:00 UTC of every day from `from` to `to` "
    f"(`every: day`) or of every weekly snapshot's weekday (`every: week`), at most "
    f"{MAX_BACKFILL_SLOTS} instants, skipping the instants the period already has a "
    "snapshot of: asking twice takes nothing the second time. Each instant is its own "
    "transaction, committed as it is taken, so a long backfill holds no transaction open "
    "and a failure keeps the snapshots taken before it: asking again takes the rest.",
    responses=problem_responses(422),
)
async def post_backfill(
    principal: ForecastWriter,
    sessions: Sessions,
    settings: SettingsDep,
    body: BackfillIn,
) -> BackfillOut:
    async with sessions() as db:
        config = await load_config(db)
    period = requested_period(body.period, config, "body.period")
    if body.to > datetime.now(UTC).date():
        raise invalid_input("body.to", "to must not be after today (UTC)")
    if body.from_ > body.to:
        raise invalid_input("body.from", "from must not be after to")
    count = range_count(body.from_, body.to, every=body.every, weekday=settings.snapshot_weekday)
    if count > MAX_BACKFILL_SLOTS:
        raise invalid_input(
            "body.from",
            f"the range has {count} instants; at most {MAX_BACKFILL_SLOTS} per request",
        )
    instants = range_instants(
        body.from_, body.to, every=body.every, weekday=settings.snapshot_weekday
    )
    async with sessions() as db:
        existing = await repository.taken_instants(
            db, periods=[period], since=midnight(body.from_), until=midnight(body.to)
        )
    before = {as_of for *_, as_of, _ in existing}
    stages = StageTable.of(config)
    taken = []
    for as_of in instants:
        if as_of in before:
            continue
        async with sessions() as db, db.begin():
            header = await repository.take_snapshot(
                db,
                stages=stages,
                period=period,
                as_of=as_of,
                kind="backfill",
                taken_by=principal.key_id,
            )
        if header is None:
            before.add(as_of)
        else:
            taken.append(SnapshotHeader.model_validate(header))
    return BackfillOut(
        period=_period_out(period),
        taken=taken,
        already_taken=[i for i in instants if i in before],
    )


@router.get(
    "/v1/forecast/snapshots",
    response_model=Trend,
    summary="The trend: a period's snapshots in order, each with its roll-up rows",
    description=TREND_DESCRIPTION,
    responses=TABLE_RESPONSES,
)
async def get_trend(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    config: CurrentConfig,
    period: PeriodQuery,
    group_by: GroupBy,
    since: Annotated[
        UtcDatetime | None, Query(alias="from", description="Snapshots as of this or later")
    ] = None,
    to: Annotated[UtcDatetime | None, Query(description="Snapshots as of this or earlier")] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TREND_PAGE, description="Snapshots per page")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before")] = None,
    format: Format = None,
) -> Trend | Response:
    chosen = requested_period(period, config, "query.period")
    if since is not None and to is not None and since > to:
        raise invalid_input("query.from", "from must not be after to")
    found = await repository.list_snapshots(
        db,
        period=chosen,
        group_by=group_by,
        since=since,
        until=to,
        kind=kind,
        after=decode_instant_id_cursor(cursor),
        limit=limit,
    )
    last = found[-1].header if len(found) == limit else None
    following = None if last is None else encode_cursor([last.as_of.isoformat(), last.id])
    if wants_csv(request, format):
        return csv_response(TREND_CSV_COLUMNS, _csv_lines(found), following)
    points = [
        TrendPoint(**SnapshotHeader.model_validate(f.header).model_dump(), rows=f.rows[group_by])
        for f in found
    ]
    return Trend(
        period=_period_out(chosen), group_by=group_by, snapshots=points, next_cursor=following
    )


@router.get(
    "/v1/forecast/snapshots/{snapshot_id}",
    response_model=SnapshotOut,
    summary="One snapshot with its rows (every grouping unless group_by)",
    responses={**TABLE_RESPONSES, **problem_responses(404)},
)
async def get_snapshot(
    request: Request,
    _: ForecastReader,
    db: ReadSession,
    snapshot_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    group_by: GroupBy | None = None,
    format: Format = None,
) -> SnapshotOut | Response:
    frozen = await repository.get_snapshot(db, snapshot_id=snapshot_id, group_by=group_by)
    if frozen is None:
        raise Problem(404, f"No snapshot {snapshot_id}.")
    if wants_csv(request, format):
        return csv_response(TREND_CSV_COLUMNS, _csv_lines([frozen]), None)
    header = frozen.header
    period = PeriodOut(label=header.period, start=header.period_start, end=header.period_end)
    return _snapshot_out(frozen, period)
