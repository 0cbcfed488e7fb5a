"""Cursor pagination and CSV responses shared by every list endpoint."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from starlette.requests import Request

from shared.problems import Problem
from shared.tables import (
    MAX_ID,
    csv_response,
    decode_cursor,
    decode_instant_id_cursor,
    decode_text_date_id_cursor,
    encode_cursor,
    wants_csv,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "values",
    [["deal-1"], [42], ["2024-01-01T00:00:00+00:00", 7], ["a/b+c=d", None, 1.5], ["ünï"]],
)
def test_cursor_round_trip(values: list[Any]) -> None:
    cursor = encode_cursor(values)
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, len(values)) == values


def test_cursor_renders_non_json_values_as_text() -> None:
    cursor = encode_cursor([datetime(2024, 1, 2, 3, 4, tzinfo=UTC), Decimal("1.50")])
    assert decode_cursor(cursor, 2) == ["2024-01-02T03:04:00+00:00", "1.50"]


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!!",
        "abcde",  # impossible base64 length
        "ünï",  # not ASCII
        b64(b"{not json"),
        b64(b'{"a": 1}'),  # JSON, but not a list
        b64(b'"deal-1"'),
        b64(b'["a", "b"]'),  # wrong arity
        b64(b"\xff\xfe"),  # not UTF-8
        encode_cursor(["deal-1"])[:-3],  # truncated
    ],
)
def test_tampered_cursor_is_400(cursor: str) -> None:
    with pytest.raises(Problem) as info:
        decode_cursor(cursor, 1)
    assert info.value.status == 400
    assert "cursor is not valid" in info.value.detail


def test_instant_id_cursor_round_trip() -> None:
    at = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    assert decode_instant_id_cursor(encode_cursor([at.isoformat(), 42])) == (at, 42)
    assert decode_instant_id_cursor(None) is None


@pytest.mark.parametrize(
    "values",
    [
        ["2026-11-30T12:00:00", 1],  # no offset
        ["yesterday", 1],
        [1, 1],
        ["2026-11-30T12:00:00+00:00", "1"],
        ["2026-11-30T12:00:00+00:00", True],
        ["2026-11-30T12:00:00+00:00", -1],
        ["2026-11-30T12:00:00+00:00", MAX_ID + 1],
    ],
)
def test_forged_instant_id_cursor_is_400(values: list[Any]) -> None:
    with pytest.raises(Problem) as info:
        decode_instant_id_cursor(encode_cursor(values))
    assert info.value.status == 400


def test_text_date_id_cursor_round_trip() -> None:
    cursor = encode_cursor(["rep-1", date(2025, 7, 1).isoformat(), 42])
    assert decode_text_date_id_cursor(cursor) == ("rep-1", date(2025, 7, 1), 42)
    assert decode_text_date_id_cursor(None) is None


@pytest.mark.parametrize(
    "values",
    [
        [1, "2025-07-01", 1],
        ["rep\x00", "2025-07-01", 1],
        ["rep", "July", 1],
        ["rep", 20250701, 1],
        ["rep", "2025-07-01", "1"],
        ["rep", "2025-07-01", False],
        ["rep", "2025-07-01", -1],
        ["rep", "2025-07-01", MAX_ID + 1],
        ["rep", "2025-07-01"],
    ],
)
def test_forged_text_date_id_cursor_is_400(values: list[Any]) -> None:
    with pytest.raises(Problem) as info:
        decode_text_date_id_cursor(encode_cursor(values))
    assert info.value.status == 400


def rows_of(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def test_csv_header_and_cells() -> None:
    rows: list[dict[str, Any]] = [
        {"deal_id": "d-1", "amount": "10.50", "properties": {"a": 1}, "splits": [1, 2]},
        {"deal_id": "d,2", "amount": None, "extra": "ignored", "splits": []},
    ]
    response = csv_response(["deal_id", "amount", "properties", "splits"], rows, "next-abc")
    assert response.media_type is not None
    assert response.media_type.startswith("text/csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-next-cursor"] == "next-abc"
    assert rows_of(bytes(response.body)) == [
        ["deal_id", "amount", "properties", "splits"],
        ["d-1", "10.50", '{"a":1}', "[1,2]"],
        ["d,2", "", "", "[]"],
    ]


def test_csv_cells_are_json_parseable_for_nested_values() -> None:
    response = csv_response(["p"], [{"p": {"when": datetime(2024, 1, 1, tzinfo=UTC)}}], None)
    cell = rows_of(bytes(response.body))[1][0]
    assert orjson.loads(cell) == {"when": "2024-01-01T00:00:00+00:00"}


def test_csv_without_rows_still_has_header_and_no_cursor() -> None:
    response = csv_response(["a", "b"], [], None)
    assert bytes(response.body) == b"a,b\r\n"
    assert "x-next-cursor" not in response.headers


def make_request(accept: str | None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("accept", "fmt", "expected"),
    [
        (None, None, False),
        ("text/csv", None, True),
        ("application/json, text/csv;q=0.5", None, True),
        ("text/csv", "json", False),
        (None, "csv", True),
        ("application/json", None, False),
    ],
)
def test_wants_csv(accept: str | None, fmt: str | None, expected: bool) -> None:
    assert wants_csv(make_request(accept), fmt) is expected


def test_wants_csv_rejects_unknown_format() -> None:
    with pytest.raises(Problem) as info:
        wants_csv(make_request(None), "xml")
    assert info.value.status == 400


def test_csv_booleans_are_lower_case_for_bi_tools() -> None:
    response = csv_response(
        ["deal_id", "deleted"],
        [{"deal_id": "a", "deleted": False}, {"deal_id": "b", "deleted": True}],
        None,
    )
    assert rows_of(bytes(response.body))[1:] == [["a", "false"], ["b", "true"]]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.50", "-12.50"),
        ("-7", "-7"),
        ("-1E-7", "-1E-7"),
        ("-2.5e+10", "-2.5e+10"),
        ("-1E-7+cmd", "'-1E-7+cmd"),
        ("-E1", "'-E1"),
        ("Acme = renewal", "Acme = renewal"),
    ],
)
def test_csv_text_that_a_spreadsheet_would_run_is_shown_as_text(value: str, shown: str) -> None:
    response = csv_response(["name", "amount"], [{"name": value, "amount": "-12.50"}], None)
    assert rows_of(bytes(response.body))[1] == [shown, "-12.50"]
