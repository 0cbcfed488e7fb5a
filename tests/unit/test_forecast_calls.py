"""Calls and adjustments: when a period is closed, and what a call or adjustment refuses."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.forecast_worker.calls.closing import is_closed
from services.forecast_worker.calls.schemas import AdjustmentIn, CallIn
from shared.periods import PeriodKind, parse_period, period_containing


def test_a_period_closes_on_the_day_after_its_last_day() -> None:
    quarter = parse_period("2026-Q4")
    assert not is_closed(quarter, date(2026, 10, 1))
    assert not is_closed(quarter, date(2026, 12, 31))
    assert is_closed(quarter, date(2027, 1, 1))
    assert is_closed(quarter, date(2030, 6, 1))


def test_a_fiscal_year_closes_by_the_configured_calendar() -> None:
    february = parse_period("FY2026", fiscal_start_month=2)
    assert not is_closed(february, date(2026, 1, 31))
    assert is_closed(february, date(2026, 2, 1))


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.sampled_from(list(PeriodKind)),
    st.integers(min_value=1, max_value=12),
)
def test_the_period_of_today_is_open_and_the_one_before_is_closed(
    today: date, kind: PeriodKind, start_month: int
) -> None:
    current = period_containing(today, kind, start_month)
    assert not is_closed(current, today)
    assert is_closed(current.previous(), today)
    assert not is_closed(current.next(), today)
    assert is_closed(current, current.end + timedelta(days=1))


def _call(**overrides: Any) -> dict[str, Any]:
    return {
        "rep_id": "ana",
        "period": "2026-Q4",
        "commit": "1200.50",
        "currency": "usd",
        "author": "Ana",
        **overrides,
    }


def _adjustment(**overrides: Any) -> dict[str, Any]:
    return {
        "period": "2026-Q4",
        "target": {"team_id": "east"},
        "category": "commit",
        "amount": "900",
        "currency": "EUR",
        "note": "one deal slips",
        "author": "Bo",
        **overrides,
    }


def _errors(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in raised.value.errors()]


def test_a_call_keeps_its_amounts_exact_and_its_currency_upper_case() -> None:
    call = CallIn.model_validate(_call(best_case="0.10", pipeline=5))
    assert (call.commit, call.best_case, call.pipeline) == (
        Decimal("1200.50"),
        Decimal("0.10"),
        Decimal(5),
    )
    assert call.currency == "USD"
    assert call.note is None


@pytest.mark.parametrize(
    ("overrides", "location", "message"),
    [
        ({"commit": 1200.5}, "commit", "not a float"),
        ({"best_case": "-1"}, "best_case", "must not be negative"),
        ({"pipeline": "lots"}, "pipeline", "not a decimal number"),
        ({"currency": "dollars"}, "currency", "not an ISO 4217 code"),
        ({"note": "x" * 256}, "note", "at most 255 characters"),
        ({"rep_id": ""}, "rep_id", "at least 1 character"),
        ({"author": None}, "author", "valid string"),
    ],
)
def test_a_call_names_the_field_at_fault(
    overrides: dict[str, Any], location: str, message: str
) -> None:
    [(at, says)] = _errors(CallIn, _call(**overrides))
    assert at == location
    assert message in says


def test_a_call_needs_at_least_one_number() -> None:
    [(at, says)] = _errors(CallIn, _call(commit=None))
    assert at == ""
    assert "at least one of commit, best_case, pipeline" in says


@pytest.mark.parametrize(
    ("overrides", "location", "message"),
    [
        ({"category": "closed"}, "category", "'commit', 'best_case' or 'pipeline'"),
        ({"amount": 3.5}, "amount", "not a float"),
        ({"amount": "-0.01"}, "amount", "must not be negative"),
        ({"note": None}, "note", "valid string"),
        ({"note": ""}, "note", "at least 1 character"),
        ({"note": "n" * 256}, "note", "at most 255 characters"),
        ({"target": {}}, "target", "exactly one of rep_id, team_id"),
        ({"target": {"rep_id": "ana", "team_id": "east"}}, "target", "exactly one of"),
        ({"target": {"manager_id": "bo"}}, "target.manager_id", "Extra inputs"),
    ],
)
def test_an_adjustment_names_the_field_at_fault(
    overrides: dict[str, Any], location: str, message: str
) -> None:
    errors = _errors(AdjustmentIn, _adjustment(**overrides))
    assert any(at == location and message in says for at, says in errors), errors


def test_an_adjustment_targets_a_rep_or_a_team() -> None:
    team = AdjustmentIn.model_validate(_adjustment())
    rep = AdjustmentIn.model_validate(_adjustment(target={"rep_id": "ana"}))
    assert (team.target.kind, team.target.id) == ("team", "east")
    assert (rep.target.kind, rep.target.id) == ("rep", "ana")
    assert team.note == "one deal slips"
