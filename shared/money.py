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


class MoneyError(ValueError):
    pass


def parse_amount(value: Any) -> Decimal:
    """Parse a decimal amount from a string or int.

    Floats are rejected because a float has already lost the cents a CRM sent; callers
    must pass the original text.
    """
    if isinstance(value, (bool, float)):
        raise MoneyError("amount must be a decimal string, not a float")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise MoneyError(f"amount {value!r} is not a decimal number") from exc
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
    if result and result.adjusted() >= MAX_DIGITS:
        raise MoneyError(f"amount has more than {MAX_DIGITS} digits before the decimal point")
    if -exponent > MAX_FRACTION_DIGITS:
        raise MoneyError(f"amount has more than {MAX_FRACTION_DIGITS} decimal places")
    return result


def parse_currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value.strip().upper()):
        raise MoneyError(f"currency {value!r} is not an ISO 4217 code")
    return value.strip().upper()


DecimalAmount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
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
