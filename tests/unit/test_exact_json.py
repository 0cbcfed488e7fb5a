"""How webhook (and re-sync) bodies are read: exact numbers that are never expanded,
bounded nesting, and NUL characters kept out of what PostgreSQL must store."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.pipeline_api.crm import json_body
from services.pipeline_api.crm.changes import (
    CrmChange,
    DealChange,
    ResyncRequest,
    Unsupported,
)
from services.pipeline_api.crm.json_body import MAX_JSON_DEPTH, exact_json
from services.pipeline_api.webhooks.deliveries import storable


def test_numbers_are_exact() -> None:
    assert exact_json(b'{"a": 12.50, "b": 7, "c": -2}') == {"a": Decimal("12.50"), "b": 7, "c": -2}


@pytest.mark.parametrize(
    "text",
    [
        "1e999999999",
        "-1E+999999999",
        "1e-999999999",
        "1e9999999999999999999",
        "0." + "0" * 100 + "1",
        str(2**64),
        str(-(2**63) - 1),
        "9" * 5000,
        "NaN",
        "-Infinity",
    ],
)
def test_numbers_too_large_to_carry_stay_text(text: str) -> None:
    assert exact_json(f"[{text}]".encode()) == [text]


def test_64_bit_integers_stay_integers() -> None:
    assert exact_json(f"[{2**64 - 1}, {-(2**63)}]".encode()) == [2**64 - 1, -(2**63)]


@pytest.mark.parametrize("offset", [0, 1, 18, 19, 100])
def test_a_long_integer_across_any_scan_chunk_boundary_stays_text(offset: int) -> None:
    """The body is scanned for 19-digit runs a chunk at a time; a run split by a chunk
    boundary is found all the same."""
    pad = b" " * (json_body._SCAN_CHUNK - offset)
    body = b"[" + pad + str(2**64).encode() + b", 1]"
    assert exact_json(body) == [str(2**64), 1]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5000])
def test_nesting_deeper_than_the_limit_is_a_value_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        exact_json(b"[" * depth + b"]" * depth)
    with pytest.raises(ValueError, match="nested deeper"):
        exact_json(b'{"a": ' * depth + b"1" + b"}" * depth)


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_JSON_DEPTH
    assert exact_json(b"[" * depth + b"]" * depth) is not None


AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_change_holding_a_nul_becomes_unsupported_with_the_reason() -> None:
    good = DealChange(crm_id="1", event_key="k1", occurred_at=AT, op="updated")
    bad = DealChange(
        crm_id="2", event_key="k2", occurred_at=AT, op="updated", properties={"n": "a\x00b"}
    )
    resync = ResyncRequest("gap", ("3\x00",))
    item = Unsupported("not handled", {"x\x00": ["y\x00"]})
    out = storable(b'"\\u0000"', [good, bad, resync, item])
    assert out[0] is good
    assert isinstance(out[1], Unsupported)
    assert "NUL" in out[1].reason
    assert out[1].item["properties"] == {"n": "a\ufffdb"}
    assert isinstance(out[2], Unsupported)
    assert "NUL" in out[2].reason
    assert out[3] == Unsupported("not handled", {"x\ufffd": ["y\ufffd"]})


def test_a_body_without_an_escaped_nul_is_passed_through() -> None:
    changes: list[CrmChange] = [DealChange(crm_id="1", event_key="k", occurred_at=AT, op="updated")]
    assert storable(b"[]", changes) is changes
