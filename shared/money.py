"""Money as `Decimal` plus an ISO 4217 code; floats are refused at the boundary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_DIGITS = 20
MAX_FRACTION_DIGITS = 12
MAX_AMOUNT_TEXT = 64
"""Longest amount text read at all: 20 digits, 12 decimals, a sign, a point and an
exponent fit with room to spare. Longer text is refused before `Decimal` reads it."""
MAX_PLAIN_DIGITS = 64
"""`number_text` writes a number out digit by digit only within this many digits either
side of the point: `1e999999999` written out would be a gigabyte."""


class MoneyError(ValueError):
    pass


def _shown(value: str) -> str:
    """The value for an error message, cut short: messages are stored with parked changes."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_amount(value: Any) -> Decimal:
    """Parse a decimal amount from a string or int: the one parser every amount goes
    through, so the size limits hold everywhere.

    Floats are rejected because a float has already lost the cents a CRM sent; callers
    must pass the original text. Sizes are checked before anything is expanded: the text
    length before `Decimal` reads it, and the digits (exponent included) before anyone
    writes the number out.
    """
    if isinstance(value, (bool, float)):
        raise MoneyError("amount must be a decimal string, not a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if not -(10**MAX_DIGITS) < value < 10**MAX_DIGITS:
            raise MoneyError(f"amount has more than {MAX_DIGITS} digits")
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_AMOUNT_TEXT:
            raise MoneyError(f"amount text is longer than {MAX_AMOUNT_TEXT} characters")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise MoneyError(f"amount {_shown(value)} is not a decimal number") from exc
    else:
        raise MoneyError(f"amount must be a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError("amount must be finite")
    parts = result.as_tuple()
    if len(parts.digits) > MAX_DIGITS:
        raise MoneyError(f"amount has more than {MAX_DIGITS} digits")
    # Count digits as written out, not as stored: "1E+25" is one stored digit but 26 real ones.
    exponent = parts.exponent
    assert isinstance(exponent, int)
    if not result and exponent > 0:
        # "0e999999999" is zero; kept as written, PostgreSQL could not store its exponent.
        return Decimal(0)
    if result.adjusted() >= MAX_DIGITS:
        raise MoneyError(f"amount has more than {MAX_DIGITS} digits before the decimal point")
    if -exponent > MAX_FRACTION_DIGITS:
        raise MoneyError(f"amount has more than {MAX_FRACTION_DIGITS} decimal places")
    return result


def amount_text(value: Any) -> str:
    """An amount as plain decimal text ("1234.50"), through `parse_amount`'s limits."""
    return format(parse_amount(value), "f")


def number_text(value: Decimal) -> str:
    """Exact text for any Decimal, for JSON-native copies (orjson cannot write Decimals):
    plain digits when that is short, else Decimal's own scientific form (`1E+999999999`),
    which is as exact and never large."""
    exponent = value.as_tuple().exponent  # a letter for NaN and Infinity
    plain = isinstance(exponent, int) and exponent >= -MAX_PLAIN_DIGITS
    if plain and value.adjusted() < MAX_PLAIN_DIGITS:
        return format(value, "f")
    return str(value)


def parse_currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value.strip().upper()):
        raise MoneyError(f"currency {value!r} is not an ISO 4217 code")
    return value.strip().upper()


DecimalAmount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    PlainSerializer(number_text, return_type=str, when_used="json"),
]
CurrencyCode = Annotated[str, BeforeValidator(parse_currency)]


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", parse_amount(self.amount))
        object.__setattr__(self, "currency", parse_currency(self.currency))

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float):
            raise MoneyError("multiply money by a Decimal, not a float")
        return Money(self.amount * factor, self.currency)

    def __str__(self) -> str:
        return f"{format(self.amount, 'f')} {self.currency}"

    def as_json(self) -> dict[str, str]:
        return {"amount": format(self.amount, "f"), "currency": self.currency}
