"""Decimal amounts and `Money`: exact arithmetic, floats refused at the boundary."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from functools import reduce
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import (
    MAX_DIGITS,
    Money,
    MoneyError,
    amount_text,
    number_text,
    parse_amount,
    parse_currency,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", Decimal("12.50")),
        ("  7 ", Decimal("7")),
        ("-3.25", Decimal("-3.25")),
        ("0", Decimal("0")),
        (42, Decimal("42")),
        (-1, Decimal("-1")),
        (Decimal("0.10"), Decimal("0.10")),
        ("1e3", Decimal("1000")),
    ],
)
def test_parse_amount_accepts_strings_ints_and_decimals(value: Any, expected: Decimal) -> None:
    result = parse_amount(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_parse_amount_keeps_the_scale_given() -> None:
    assert str(parse_amount("12.50")) == "12.50"


@pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), True, False])
def test_parse_amount_rejects_floats_and_bools(value: Any) -> None:
    with pytest.raises(MoneyError, match="not a float"):
        parse_amount(value)


@pytest.mark.parametrize(
    "value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("Inf")]
)
def test_parse_amount_rejects_non_finite(value: Any) -> None:
    with pytest.raises(MoneyError, match="finite"):
        parse_amount(value)


@pytest.mark.parametrize("value", ["", "   ", "abc", "1,000.00", "12.5.3", "$5"])
def test_parse_amount_rejects_non_numbers(value: str) -> None:
    with pytest.raises(MoneyError, match="not a decimal number"):
        parse_amount(value)


@pytest.mark.parametrize("value", [None, [1], {"amount": "1"}, b"12"])
def test_parse_amount_rejects_other_types(value: Any) -> None:
    with pytest.raises(MoneyError, match="must be a decimal string"):
        parse_amount(value)


def test_parse_amount_digit_limit() -> None:
    assert MAX_DIGITS == 20
    twenty = "9" * 20
    assert parse_amount(twenty) == Decimal(twenty)
    assert parse_amount("1234567890.1234567890") == Decimal("1234567890.1234567890")
    with pytest.raises(MoneyError, match="more than 20 digits"):
        parse_amount("9" * 21)
    with pytest.raises(MoneyError, match="more than 20 digits"):
        parse_amount(10**20)
    with pytest.raises(MoneyError, match="more than 20 digits"):
        parse_amount("12345678901.1234567890")


@pytest.mark.parametrize("value", ["1E+25", "1E+1000000", Decimal("1E+25")])
def test_parse_amount_digit_limit_cannot_be_bypassed_with_exponent(value: Any) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value)


@pytest.mark.parametrize("value", ["0e999999999", "-0E+25", "0e1", Decimal("0E+999999999")])
def test_zero_with_any_exponent_is_plain_zero(value: Any) -> None:
    zero = parse_amount(value)
    assert zero == 0
    assert zero.as_tuple().exponent == 0
    assert amount_text(value) == "0"


def test_zero_keeps_its_decimal_places_within_the_limit() -> None:
    assert str(parse_amount("0.00")) == "0.00"
    with pytest.raises(MoneyError, match="decimal places"):
        parse_amount("0e-999999999")


@pytest.mark.parametrize(("value", "expected"), [("usd", "USD"), (" eur ", "EUR"), ("GBP", "GBP")])
def test_currency_normalised(value: str, expected: str) -> None:
    assert parse_currency(value) == expected
    assert Money(Decimal("1"), value).currency == expected


@pytest.mark.parametrize("value", ["US", "USDX", "U1D", "", "us d", 840, None])
def test_bad_currency_rejected(value: Any) -> None:
    with pytest.raises(MoneyError, match="ISO 4217"):
        parse_currency(value)
    with pytest.raises(MoneyError):
        Money(Decimal("1"), value)


def test_money_parses_its_amount() -> None:
    money = Money("12.30", "usd")  # type: ignore[arg-type]
    assert money.amount == Decimal("12.30")
    with pytest.raises(MoneyError, match="not a float"):
        Money(0.1, "USD")  # type: ignore[arg-type]


def test_add_and_sub_are_exact() -> None:
    a = Money(Decimal("0.1"), "USD")
    b = Money(Decimal("0.2"), "USD")
    assert (a + b).amount == Decimal("0.3")
    assert a + b == Money(Decimal("0.3"), "USD")
    assert (b - a).amount == Decimal("0.1")
    assert (a - b) == Money(Decimal("-0.1"), "USD")


def test_different_currencies_cannot_combine() -> None:
    usd = Money(Decimal("1"), "USD")
    eur = Money(Decimal("1"), "EUR")
    with pytest.raises(MoneyError, match="USD with EUR"):
        usd + eur
    with pytest.raises(MoneyError, match="EUR with USD"):
        eur - usd


def test_multiply_by_decimal_or_int() -> None:
    m = Money(Decimal("10.10"), "USD")
    assert m * 3 == Money(Decimal("30.30"), "USD")
    assert (m * Decimal("0.5")).amount == Decimal("5.05")


def test_multiply_by_float_raises() -> None:
    factor: Any = 1.5
    with pytest.raises(MoneyError, match="not a float"):
        Money(Decimal("10"), "USD") * factor


def test_result_over_digit_limit_raises() -> None:
    big = Money(Decimal("9" * 20), "USD")
    with pytest.raises(MoneyError, match="more than 20 digits"):
        big + Money(Decimal("1"), "USD")


def test_money_is_frozen() -> None:
    m = Money(Decimal("1"), "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.amount = Decimal("2")  # type: ignore[misc]


def test_str_and_json_use_plain_notation() -> None:
    m = Money(Decimal("1.5E+3"), "usd")
    assert str(m) == "1500 USD"
    assert m.as_json() == {"amount": "1500", "currency": "USD"}
    assert Money(Decimal("0.10"), "EUR").as_json() == {"amount": "0.10", "currency": "EUR"}


amounts = st.decimals(
    min_value=Decimal("-1000000000"),
    max_value=Decimal("1000000000"),
    places=4,
    allow_nan=False,
    allow_infinity=False,
)


@given(st.lists(amounts, max_size=30))
def test_sum_of_money_equals_decimal_sum(values: list[Decimal]) -> None:
    total = reduce(lambda acc, d: acc + Money(d, "USD"), values, Money(Decimal(0), "USD"))
    expected = sum(values, Decimal(0))
    assert total.currency == "USD"
    assert total.amount == expected
    assert Decimal(total.as_json()["amount"]) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1e999999999",
        "-1E+999999999",
        "1e-999999999",
        "1e9999999999999999999",
        "9" * 5000,
        "0." + "0" * 5000 + "1",
        10**4000,
        -(10**25),
        Decimal("1e999999999"),
    ],
)
def test_amounts_are_refused_before_anything_is_expanded(value: Any) -> None:
    with pytest.raises(MoneyError, match=r"digits|characters|decimal places|not a decimal"):
        amount_text(value)


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "sNaN", Decimal("Inf")])
def test_amount_text_refuses_non_finite(value: Any) -> None:
    with pytest.raises(MoneyError, match="finite"):
        amount_text(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e3", "1000"), (" 12.50 ", "12.50"), (42, "42"), (Decimal("-0.10"), "-0.10")],
)
def test_amount_text_is_plain_decimal_text(value: Any, expected: str) -> None:
    assert amount_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000100"), "0.000100"),
        (Decimal("1e999999999"), "1E+999999999"),
        (Decimal("-1e-999999999"), "-1E-999999999"),
        (Decimal("NaN"), "NaN"),
    ],
)
def test_number_text_is_exact_and_never_large(value: Decimal, expected: str) -> None:
    assert number_text(value) == expected
    if value.is_finite():
        assert Decimal(number_text(value)) == value
