"""Turning an intake body into a list of items: JSON object, JSON array or NDJSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message

from services.pipeline_api.events.intake import NDJSON, parse_body, read_events
from shared.problems import Problem


def problem(body: bytes, media_type: str) -> Problem:
    with pytest.raises(Problem) as info:
        parse_body(body, media_type)
    return info.value


@pytest.mark.parametrize(
    "media_type",
    ["application/json", "application/cloudevents+json", "application/cloudevents-batch+json"],
)
def test_single_object_becomes_one_item(media_type: str) -> None:
    assert parse_body(b'{"id": "a", "n": 1}', media_type) == [{"id": "a", "n": 1}]


def test_array_becomes_its_items() -> None:
    body = b'[{"id": "a"}, {"id": "b"}, 3]'
    assert parse_body(body, "application/json") == [{"id": "a"}, {"id": "b"}, 3]


def test_empty_array_is_no_items() -> None:
    assert parse_body(b"[]", "application/json") == []


def test_ndjson_skips_blank_lines() -> None:
    body = b'\n{"id": "a"}\n\n   \n{"id": "b"}\r\n[1, 2]\n'
    assert parse_body(body, NDJSON) == [{"id": "a"}, {"id": "b"}, [1, 2]]


def test_ndjson_empty_body_is_no_items() -> None:
    assert parse_body(b"\n\n", NDJSON) == []


def test_malformed_json_is_400() -> None:
    p = problem(b'{"id": "a",', "application/json")
    assert p.status == 400
    assert "not valid JSON" in p.detail
    assert p.slug == "bad-request"


def test_empty_json_body_is_400() -> None:
    assert problem(b"", "application/json").status == 400


def test_malformed_ndjson_line_reports_line_number() -> None:
    body = b'{"id": "a"}\n\n{"id": "b"}\n{not json}\n{"id": "c"}\n'
    p = problem(body, NDJSON)
    assert p.status == 400
    assert p.detail.startswith("Line 4 of the NDJSON body is not valid JSON")


def test_ndjson_line_numbers_count_crlf_once() -> None:
    p = problem(b'{"a": 1}\r\n{"b": 2}\r\n{oops\r\n', NDJSON)
    assert "Line 3 " in p.detail


@pytest.mark.parametrize("media_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_unsupported_media_type_is_415(media_type: str) -> None:
    p = problem(b'{"id": "a"}', media_type)
    assert p.status == 415
    assert repr(media_type) in p.detail
    assert p.slug == "unsupported-media-type"


def make_request(body: bytes, headers: Sequence[tuple[str, str]]) -> Request:
    chunks = [body]

    async def receive() -> Message:
        data = chunks.pop() if chunks else b""
        return {"type": "http.request", "body": data, "more_body": False}

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    return Request(scope, receive)


async def test_read_events_uses_content_type() -> None:
    request = make_request(
        b'{"id": 1}\n{"id": 2}\n', [("Content-Type", "application/x-ndjson; charset=utf-8")]
    )
    assert await read_events(request, max_bytes=1024, max_events=10) == [{"id": 1}, {"id": 2}]


async def test_read_events_defaults_to_json() -> None:
    request = make_request(b'[{"id": 1}]', [])
    assert await read_events(request, max_bytes=1024, max_events=10) == [{"id": 1}]


async def test_read_events_refuses_no_events() -> None:
    with pytest.raises(Problem) as info:
        await read_events(make_request(b"[]", []), max_bytes=1024, max_events=10)
    assert info.value.status == 400
    assert "no events" in info.value.detail


async def test_read_events_refuses_too_many_events() -> None:
    with pytest.raises(Problem) as info:
        await read_events(make_request(b"[1, 2, 3]", []), max_bytes=1024, max_events=2)
    assert info.value.status == 413
    assert "3 events" in info.value.detail


async def test_read_events_refuses_large_declared_body() -> None:
    request = make_request(b"[1]", [("Content-Length", "5000")])
    with pytest.raises(Problem) as info:
        await read_events(request, max_bytes=1024, max_events=10)
    assert info.value.status == 413


async def test_read_events_refuses_large_streamed_body() -> None:
    body = b"[" + b"1," * 600 + b"1]"
    with pytest.raises(Problem) as info:
        await read_events(make_request(body, []), max_bytes=1024, max_events=10_000)
    assert info.value.status == 413
    assert "1024 bytes" in info.value.detail
