"""What the deal read API answers. Money is a decimal string; times are RFC 3339 UTC."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, create_model

from shared.deal_fields import DEAL_FIELDS, DealField, Kind

_SCALARS = tuple(f.name for f in DEAL_FIELDS if not f.json_valued)
_JSON_VALUED = tuple(f.name for f in DEAL_FIELDS if f.json_valued)

DEAL_CSV_COLUMNS = (
    "deal_id",
    *_SCALARS,
    "deleted",
    "version",
    "valid_from",
    "valid_to",
    *_JSON_VALUED,
    "properties",
)
"""The CSV's column order, which BI tools depend on: a new field goes where its kind puts
it, never between columns that exist."""

_PlainDecimal = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]
_READ_TYPES: dict[Kind, Any] = {
    Kind.TEXT: str,
    Kind.ID: str,
    Kind.MONEY: _PlainDecimal,
    Kind.CURRENCY: str,
    Kind.DATE: date,
    Kind.DATETIME: datetime,
    Kind.ENUM: str,
    Kind.SPLITS: list[dict[str, Any]],
}
_READ_DESCRIPTIONS = {Kind.MONEY: "Decimal string"}


def _read_field(field: DealField) -> tuple[Any, Any]:
    """How the read API types a deal field: its stored form, null unless never null."""
    annotation = _READ_TYPES[field.kind]
    if field.nullable:
        annotation = annotation | None
    return annotation, Field(description=_READ_DESCRIPTIONS.get(field.kind))


def _deal_out() -> type[BaseModel]:
    fields = {f.name: _read_field(f) for f in DEAL_FIELDS}
    definitions: dict[str, Any] = {
        "deal_id": (str, ...),
        **{name: fields[name] for name in _SCALARS},
        "deleted": (bool, ...),
        **{name: fields[name] for name in _JSON_VALUED},
        "properties": (dict[str, Any], ...),
        "version": (int, ...),
        "valid_from": (datetime, Field(description="CRM time from which this state holds")),
        "valid_to": (
            datetime | None,
            Field(None, description="When it stopped holding; null if current"),
        ),
    }
    return create_model("DealOut", __config__=ConfigDict(from_attributes=True), **definitions)


# Built from the definition at run time, which mypy cannot follow: to it, DealOut is a
# model of unknown fields, and nothing reads them statically (routes validate and dump).
if TYPE_CHECKING:
    DealOut = BaseModel
else:
    DealOut = _deal_out()


class DealPage(BaseModel):
    items: list[DealOut]
    next_cursor: str | None


class DealHistory(BaseModel):
    deal_id: str
    versions: list[DealOut]
