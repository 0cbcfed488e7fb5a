"""The deal's fields, defined once: add a field here and every layer that lists them follows.

Derived from `DEAL_FIELDS`: the names the fold keeps (`deals/projection.py`), one column
each in `forecast.deals` and `forecast.deal_versions` (`DealColumns`, typed by kind), the
repository's conversion between the fold's JSON form and SQL values (by kind), and the read
API (`DealOut`, the CSV column order). A new field still needs its migration
(`alembic check` says so) and its line in the event model.

The event model, `shared.events.DealFields`, stays written out by hand and is checked
against this definition when `shared.events` is imported (and by a unit test), so a field
added in one place and not the other stops every service at start-up. It is not generated
because code relies on it statically: `DealCreated` and `DealUpdated` subclass it and its
validators read `self.amount`, `self.currency` and `self.splits`, while to mypy a model
built by `create_model` is a variable, neither a base class nor a type with attributes.

`properties` is not one of these fields: it holds the CRM properties a source keeps, merged
key by key rather than replaced, and each layer treats it apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

from annotated_types import MaxLen, MinLen
from pydantic import BaseModel

ForecastCategory = Literal["pipeline", "best_case", "commit", "closed", "omitted"]
DealType = Literal["new_business", "expansion", "renewal"]
DealStatus = Literal["open", "won", "lost"]


class Kind(StrEnum):
    """What a field's value is, which decides its event type, column type and JSON form."""

    TEXT = "text"
    ID = "id"
    MONEY = "money"
    """A decimal string in JSON and in the fold, `Decimal` in SQL (never a float)."""
    CURRENCY = "currency"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    SPLITS = "splits"
    """The commission splits, a JSON list in every form."""


@dataclass(frozen=True)
class DealField:
    name: str
    kind: Kind
    description: str | None = None
    """What the event schema says of the field (the read API documents only wire forms)."""
    values: tuple[str, ...] = ()
    """The allowed values of an `ENUM` field."""
    min_length: int | None = None
    max_length: int | None = None
    stored_default: str | None = None
    """Stored when the deal has no value, for a field that is never null once stored."""

    @property
    def nullable(self) -> bool:
        return self.stored_default is None

    @property
    def json_valued(self) -> bool:
        """Whether the value is JSON rather than a scalar: listed after the scalar fields
        in the read API and the CSV, where such a cell is the widest and least sortable."""
        return self.kind is Kind.SPLITS


DEAL_FIELDS: tuple[DealField, ...] = (
    DealField("name", Kind.TEXT, max_length=1000),
    DealField("account_id", Kind.ID),
    DealField("owner_id", Kind.ID),
    DealField("amount", Kind.MONEY),
    DealField("currency", Kind.CURRENCY),
    DealField("stage", Kind.TEXT, min_length=1, max_length=200),
    DealField("pipeline", Kind.TEXT),
    DealField("forecast_category", Kind.ENUM, values=get_args(ForecastCategory)),
    DealField("close_date", Kind.DATE),
    DealField("created_at", Kind.DATETIME),
    DealField("deal_type", Kind.ENUM, values=get_args(DealType)),
    DealField(
        "status",
        Kind.ENUM,
        description="Derived from the stage when absent (won/lost stage names).",
        values=get_args(DealStatus),
        stored_default="open",
    ),
    DealField("splits", Kind.SPLITS),
)
FIELD_NAMES = tuple(f.name for f in DEAL_FIELDS)


def event_model_mismatches(
    model: type[BaseModel], event_type: Callable[[DealField], Any], *, others: Sequence[str]
) -> list[str]:
    """How a hand-written event model differs from `DEAL_FIELDS`: empty when it declares
    exactly these fields, in this order, then `others`, each optional with the type
    `event_type` gives its kind, and with the definition's description and length limits."""
    found = tuple(model.model_fields)
    wanted = (*FIELD_NAMES, *others)
    problems = [] if found == wanted else [f"fields are {found}, the definition says {wanted}"]
    for field in DEAL_FIELDS:
        info = model.model_fields.get(field.name)
        if info is None:
            continue
        expected = event_type(field) | None
        limits = [
            *([] if field.min_length is None else [MinLen(field.min_length)]),
            *([] if field.max_length is None else [MaxLen(field.max_length)]),
        ]
        if info.annotation != expected:
            problems.append(f"{field.name}: type {info.annotation}, expected {expected}")
        if info.is_required() or info.default is not None:
            problems.append(f"{field.name}: must default to None (not in the event)")
        if info.description != field.description:
            problems.append(f"{field.name}: description {info.description!r}")
        if info.metadata != limits:
            problems.append(f"{field.name}: constraints {info.metadata}, expected {limits}")
    return problems
