"""Re-sync reads CRM REST answers as webhook bodies are read: amounts through the one
amount parser, numbers never expanded, and an impossible timestamp a ValueError (which
fails that one record with its reason), never another exception."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.pipeline_api.crm.http import decode_json
from services.pipeline_api.crm.values import Unreadable, decimal_text, instant, jsonable
from shared.money import MoneyError


@pytest.mark.parametrize("value", ["1e999999999", "-1E+999999999", "9" * 5000, "NaN", 10**30])
def test_resync_amounts_go_through_the_amount_parser(value: Any) -> None:
    with pytest.raises(Unreadable, match=r"^amount: .* is not an exact decimal") as refused:
        decimal_text(value, "amount")
    assert isinstance(refused.value.__cause__, MoneyError)
    assert str(value)[:8] not in str(refused.value), "a job error never quotes the CRM's value"


def test_resync_amounts_are_plain_text() -> None:
    assert decimal_text(Decimal("1E+3"), "amount") == "1000"
    assert decimal_text("12.50", "amount") == "12.50"


def test_resync_properties_never_expand_a_number() -> None:
    assert jsonable({"a": [Decimal("1e999999999")]}) == {"a": ["1E+999999999"]}


def test_resync_bodies_keep_huge_numbers_as_text() -> None:
    request = httpx.Request("GET", "https://api.hubapi.com/x")
    response = httpx.Response(200, content=b'{"amount": 1e999999999}', request=request)
    assert decode_json(response, "HubSpot") == {"amount": "1e999999999"}


@pytest.mark.parametrize("value", [2**63, str(10**18), "\u00b2\u00b3"])
def test_impossible_timestamps_are_value_errors(value: Any) -> None:
    with pytest.raises(ValueError, match=r"timestamp|invalid"):
        instant(value, "closedate")
