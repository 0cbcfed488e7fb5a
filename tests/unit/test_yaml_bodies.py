"""YAML bodies read into the JSON a client could have sent, and refused where they stand."""

from __future__ import annotations

import json

import pytest

from shared.problems import Problem
from shared.yaml_bodies import is_yaml, yaml_to_json


def test_a_yaml_document_becomes_the_same_json() -> None:
    body = b"""
effective_from: 2026-01-01
document:
  name: AE flat
  target_variable: "10000"
  window_days: 90
  rates: [7.50, 10, 1.0e+3]
  at: 2026-01-01T10:00:00Z
  active: true
  none: ~
"""
    assert json.loads(yaml_to_json(body)) == {
        "effective_from": "2026-01-01",
        "document": {
            "name": "AE flat",
            "target_variable": "10000",
            "window_days": 90,
            "rates": ["7.50", 10, "1.0e+3"],
            "at": "2026-01-01T10:00:00Z",
            "active": True,
            "none": None,
        },
    }


def test_dates_stay_text_so_a_bad_one_is_the_model_s_error() -> None:
    assert json.loads(yaml_to_json(b"effective_from: 2026-13-01")) == {
        "effective_from": "2026-13-01"
    }


def test_numbers_and_booleans_only_as_json_writes_them() -> None:
    """YAML 1.1 would read `030` as 24, `0x1F` as 31, `1:30` as 90 and `NO` or `yes` as
    booleans: a hand-written plan would change silently. Those stay text for the models."""
    body = b"a: 030\nb: 0x1F\nc: 1:30\nd: NO\ne: yes\nf: 1_000\ng: 12\nh: -3\ni: true\nj: False"
    assert json.loads(yaml_to_json(body)) == {
        "a": "030",
        "b": "0x1F",
        "c": "1:30",
        "d": "NO",
        "e": "yes",
        "f": "1_000",
        "g": 12,
        "h": -3,
        "i": True,
        "j": False,
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"a: [1, 2\nb: 3", "expected ',' or ']', but got ':' at line 2, column 2"),
        (b"a: 1\n\tb: 2", "at line 2, column 1"),
        (b"a: &x [1]\nb: *x", "aliases are not accepted (JSON has none) at line 2, column 4"),
        (b"a: 1\nb: !!binary aGVsbG8=", "binary has no JSON form at line 2, column 4"),
        (b"a: !!set {x}", "set has no JSON form at line 1, column 4"),
        (b"? [1]\n: 2", "unhashable key at line 1, column 3"),
        (b"---\na\n---\nb", "but found another document at line 3, column 1"),
        (b"a: " + b"9" * 5000, "at line 1, column 4"),
        (b"a: \x80", "invalid start byte at byte 3"),
        (b"[" * 2000, "nested too deeply"),
    ],
)
def test_a_body_that_does_not_parse_says_where(body: bytes, where: str) -> None:
    with pytest.raises(Problem) as caught:
        yaml_to_json(body)
    problem = caught.value
    assert problem.status == 422
    assert where in problem.detail
    assert problem.errors is not None
    assert problem.errors[0]["location"] == "body"
    assert where in problem.errors[0]["message"]


def test_a_nul_character_is_refused_as_in_json() -> None:
    with pytest.raises(Problem, match="NUL"):
        yaml_to_json(b'a: "x\\0y"')


@pytest.mark.parametrize(
    ("content_type", "yaml"),
    [
        ("application/yaml", True),
        ("application/x-yaml; charset=utf-8", True),
        ("Text/YAML", True),
        ("application/json", False),
        ("application/yaml+json", False),
        (None, False),
    ],
)
def test_is_yaml(content_type: str | None, yaml: bool) -> None:
    assert is_yaml(content_type) is yaml
