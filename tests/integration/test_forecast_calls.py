"""Calls and adjustments through the real stack: recorded, listed, latest wins, append-only."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.forecast_worker.calls import repository
from services.forecast_worker.calls.schemas import ADJUSTMENT_CSV_COLUMNS, CALL_CSV_COLUMNS
from shared.db import create_engine, create_sessionmaker
from shared.periods import parse_period
from shared.settings import key_id
from tests.conftest import ADMIN_KEY, FORECASTER_KEY, READER_KEY

pytestmark = pytest.mark.integration

OPEN = "2099-Q4"
"""A period that stays open as long as this code does."""


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, application_name="calls-test")
    yield engine
    await engine.dispose()


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=_headers(FORECASTER_KEY))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _call(rep_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "rep_id": rep_id,
        "period": OPEN,
        "commit": "1000.00",
        "currency": "USD",
        "author": "Ana Rep",
        **overrides,
    }


def _adjustment(**overrides: Any) -> dict[str, Any]:
    return {
        "period": OPEN,
        "category": "commit",
        "amount": "750.25",
        "currency": "USD",
        "note": "the Acme renewal slips to next quarter",
        "author": "Bo Manager",
        **overrides,
    }


async def _period_dates(client: httpx.AsyncClient, label: str) -> tuple[str, str]:
    month = (await client.get("/v1/forecast/config")).json()["fiscal_year_start_month"]
    period = parse_period(label, month)
    return period.start.isoformat(), period.end.isoformat()


async def test_a_call_is_stored_with_its_author_key_and_server_time(
    client: httpx.AsyncClient,
) -> None:
    rep = _unique("ana")
    stored = await _post(
        client,
        "/v1/forecast/calls",
        _call(rep, period="2099-q4", best_case="1500.5", note="two deals need legal"),
    )
    start, end = await _period_dates(client, OPEN)
    assert stored["rep_id"] == rep
    assert (stored["period"], stored["period_start"], stored["period_end"]) == (OPEN, start, end)
    assert (stored["commit"], stored["best_case"], stored["pipeline"]) == (
        "1000.00",
        "1500.5",
        None,
    )
    assert (stored["currency"], stored["author"]) == ("USD", "Ana Rep")
    assert stored["note"] == "two deals need legal"
    assert stored["key_id"] == key_id(FORECASTER_KEY)
    assert FORECASTER_KEY not in str(stored)
    assert datetime.fromisoformat(stored["recorded_at"]).tzinfo is not None
    assert isinstance(stored["id"], int)


async def test_call_history_newest_first_in_json_and_csv_with_paging(
    client: httpx.AsyncClient,
) -> None:
    rep = _unique("cy")
    amounts = ["100", "200", "300"]
    posted = [await _post(client, "/v1/forecast/calls", _call(rep, commit=a)) for a in amounts]
    reader = _headers(READER_KEY)
    params: dict[str, Any] = {"period": OPEN, "rep_id": rep, "limit": 2}
    first = await client.get("/v1/forecast/calls", params=params, headers=reader)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [i["commit"] for i in page["items"]] == ["300", "200"]
    assert page["items"][0] == posted[-1]
    second = await client.get(
        "/v1/forecast/calls", params={**params, "cursor": page["next_cursor"]}, headers=reader
    )
    assert [i["commit"] for i in second.json()["items"]] == ["100"]
    assert second.json()["next_cursor"] is None

    as_csv = await client.get(
        "/v1/forecast/calls", params={"rep_id": rep, "format": "csv"}, headers=reader
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == CALL_CSV_COLUMNS
    assert [r[CALL_CSV_COLUMNS.index("commit")] for r in rows[1:]] == ["300", "200", "100"]
    assert {r[CALL_CSV_COLUMNS.index("key_id")] for r in rows[1:]} == {key_id(FORECASTER_KEY)}

    other = await client.get(
        "/v1/forecast/calls", params={"rep_id": rep, "period": "2099-Q3"}, headers=reader
    )
    assert other.json() == {"items": [], "next_cursor": None}


async def test_adjustments_of_reps_and_teams_are_listed_in_both_formats(
    client: httpx.AsyncClient,
) -> None:
    rep, team = _unique("di"), _unique("east")
    to_rep = await _post(client, "/v1/forecast/adjustments", _adjustment(target={"rep_id": rep}))
    to_team = await _post(
        client,
        "/v1/forecast/adjustments",
        _adjustment(target={"team_id": team}, category="best_case", amount="9000"),
    )
    assert (to_rep["target_kind"], to_rep["target_id"]) == ("rep", rep)
    assert (to_team["target_kind"], to_team["target_id"], to_team["category"]) == (
        "team",
        team,
        "best_case",
    )
    assert to_team["note"] == "the Acme renewal slips to next quarter"
    assert to_team["key_id"] == key_id(FORECASTER_KEY)
    reader = _headers(READER_KEY)
    listed = await client.get("/v1/forecast/adjustments", params={"team_id": team}, headers=reader)
    assert listed.json()["items"] == [to_team]
    both = await client.get(
        "/v1/forecast/adjustments",
        params={"period": OPEN, "rep_id": rep, "team_id": team},
        headers=reader,
    )
    assert [i["id"] for i in both.json()["items"]] == [to_team["id"], to_rep["id"]]
    as_csv = await client.get(
        "/v1/forecast/adjustments",
        params={"rep_id": rep, "team_id": team},
        headers={**reader, "Accept": "text/csv"},
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == ADJUSTMENT_CSV_COLUMNS
    assert [(r["target_kind"], r["amount"]) for r in rows] == [("team", "9000"), ("rep", "750.25")]


async def test_the_latest_wins_and_as_of_shows_the_one_that_stood_then(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    rep, team = _unique("el"), _unique("west")
    older = await _post(client, "/v1/forecast/calls", _call(rep, commit="10"))
    newer = await _post(client, "/v1/forecast/calls", _call(rep, commit="20"))
    old_adj = await _post(
        client, "/v1/forecast/adjustments", _adjustment(target={"team_id": team}, amount="1")
    )
    new_adj = await _post(
        client, "/v1/forecast/adjustments", _adjustment(target={"team_id": team}, amount="2")
    )
    month = (await client.get("/v1/forecast/config")).json()["fiscal_year_start_month"]
    period = parse_period(OPEN, month)
    async with create_sessionmaker(engine)() as session:
        now = await repository.latest_calls(
            session, period_start=period.start, period_end=period.end
        )
        then = await repository.latest_calls(
            session,
            period_start=period.start,
            period_end=period.end,
            as_of=datetime.fromisoformat(older["recorded_at"]),
        )
        adjusted = await repository.latest_adjustments(
            session, period_start=period.start, period_end=period.end
        )
        adjusted_then = await repository.latest_adjustments(
            session,
            period_start=period.start,
            period_end=period.end,
            as_of=datetime.fromisoformat(old_adj["recorded_at"]),
        )
    assert now[rep].id == newer["id"]
    assert then[rep].id == older["id"]
    assert adjusted[("team", team, "commit")].id == new_adj["id"]
    assert adjusted_then[("team", team, "commit")].id == old_adj["id"]


async def test_a_closed_period_is_refused_with_409(client: httpx.AsyncClient) -> None:
    rep = _unique("fa")
    call = await client.post("/v1/forecast/calls", json=_call(rep, period="2020-Q1"))
    assert call.status_code == 409, call.text
    assert "2020-Q1 is closed" in call.json()["detail"]
    adjustment = await client.post(
        "/v1/forecast/adjustments", json=_adjustment(period="2020-03", target={"rep_id": rep})
    )
    assert adjustment.status_code == 409, adjustment.text
    listed = await client.get("/v1/forecast/calls", params={"rep_id": rep})
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "location", "message"),
    [
        ("/v1/forecast/calls", _call("g", period="2026-Q5"), "body.period", "is not a period"),
        ("/v1/forecast/calls", _call("g", commit=12.5), "body.commit", "not a float"),
        ("/v1/forecast/calls", _call("g", commit="-5"), "body.commit", "must not be negative"),
        ("/v1/forecast/calls", _call("g", commit=None), "body", "at least one of"),
        (
            "/v1/forecast/adjustments",
            _adjustment(target={"rep_id": "g"}, category="closed"),
            "body.category",
            "'commit', 'best_case' or 'pipeline'",
        ),
        (
            "/v1/forecast/adjustments",
            _adjustment(target={"rep_id": "g", "team_id": "t"}),
            "body.target",
            "exactly one of rep_id, team_id",
        ),
        ("/v1/forecast/adjustments", _adjustment(target={}), "body.target", "exactly one of"),
        (
            "/v1/forecast/adjustments",
            _adjustment(target={"team_id": "t"}, note=None),
            "body.note",
            "valid string",
        ),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], location: str, message: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["location"] == location and message in e["message"] for e in errors), errors


async def test_an_unparsable_period_filter_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/forecast/adjustments", params={"period": "Q4-2026"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["location"] == "query.period"
    assert "'Q4-2026' is not a period" in error["message"]


async def test_a_reader_key_may_list_but_not_write(client: httpx.AsyncClient) -> None:
    reader = _headers(READER_KEY)
    for path, body in (
        ("/v1/forecast/calls", _call(_unique("hu"))),
        ("/v1/forecast/adjustments", _adjustment(target={"team_id": "t"})),
    ):
        refused = await client.post(path, json=body, headers=reader)
        assert refused.status_code == 403, refused.text
        assert "forecast:write" in refused.json()["detail"]
        assert (await client.get(path, headers=reader)).status_code == 200
    admin = await client.post(
        "/v1/forecast/calls", json=_call(_unique("ad")), headers=_headers(ADMIN_KEY)
    )
    assert admin.status_code == 201
    assert admin.json()["key_id"] == key_id(ADMIN_KEY)


@pytest.mark.parametrize("table", ["calls", "adjustments"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE forecast.{table} SET author = 'someone else' WHERE id = :id",
        "DELETE FROM forecast.{table} WHERE id = :id",
        "TRUNCATE forecast.{table}",
    ],
)
async def test_the_database_refuses_to_rewrite_history(
    client: httpx.AsyncClient, engine: AsyncEngine, table: str, statement: str
) -> None:
    body = _call(_unique("iv")) if table == "calls" else _adjustment(target={"team_id": "t"})
    row = await _post(client, f"/v1/forecast/{table}", body)
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text(statement.format(table=table)), {"id": row["id"]})
        await conn.rollback()
        author = await conn.scalar(
            text(f"SELECT author FROM forecast.{table} WHERE id = :id"),
            {"id": row["id"]},
        )
    assert author == body["author"]
