"""The deal fields are defined once (shared/deal_fields.py): every layer that lists them
follows the definition, and a deal carrying every field survives the whole path unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, Field, create_model
from sqlalchemy import Date, DateTime, Numeric, Text
from sqlalchemy.dialects.postgresql import JSONB

from services.forecast_worker.deals.handler import to_change
from services.forecast_worker.deals.projection import FIELDS, StageRules, extend_versions
from services.forecast_worker.deals.repository import _version_from_row
from services.forecast_worker.deals.schemas import DEAL_CSV_COLUMNS, DealOut
from services.forecast_worker.models import Deal, DealVersion
from shared.deal_fields import DEAL_FIELDS, FIELD_NAMES, DealField, Kind, event_model_mismatches
from shared.events import DealCreated, DealFields, deal_event_type, validate_event
from shared.settings import DEFAULT_LOST_STAGES, DEFAULT_WON_STAGES
from tests.support.deal_rows import deal_row

CREATED = "com.salesops.deal.created.v1"
RULES = StageRules.of(DEFAULT_WON_STAGES, DEFAULT_LOST_STAGES)

EVERY_FIELD: dict[str, Any] = {
    "deal_id": "deal-all",
    "name": "Every field",
    "account_id": "acct-1",
    "owner_id": "rep-1",
    "amount": "1234.50",
    "currency": "EUR",
    "stage": "Negotiation",
    "pipeline": "default",
    "forecast_category": "best_case",
    "close_date": "2024-03-31",
    "created_at": "2024-01-02T03:04:05.123456Z",
    "deal_type": "expansion",
    "status": "open",
    "splits": [
        {"rep_id": "rep-1", "percent": "60", "role": "owner"},
        {"rep_id": "rep-2", "percent": "40", "role": "overlay"},
    ],
    "properties": {"hs_priority": "high"},
}

COLUMN_TYPES = {
    Kind.TEXT: Text,
    Kind.ID: Text,
    Kind.MONEY: Numeric,
    Kind.CURRENCY: Text,
    Kind.DATE: Date,
    Kind.DATETIME: DateTime,
    Kind.ENUM: Text,
    Kind.SPLITS: JSONB,
}


def test_fold_keeps_the_defined_fields() -> None:
    assert FIELDS == FIELD_NAMES == tuple(f.name for f in DEAL_FIELDS)


@pytest.mark.parametrize("table", [Deal.__table__, DealVersion.__table__], ids=lambda t: t.name)
@pytest.mark.parametrize("field", DEAL_FIELDS, ids=lambda f: f.name)
def test_each_field_is_a_column_typed_by_its_kind(table: Any, field: DealField) -> None:
    column = table.c[field.name]
    assert isinstance(column.type, COLUMN_TYPES[field.kind])
    assert column.nullable is field.nullable
    if field.kind is Kind.DATETIME:
        assert isinstance(column.type, DateTime)
        assert column.type.timezone is True


def test_only_status_is_never_null() -> None:
    assert [f.name for f in DEAL_FIELDS if not f.nullable] == ["status"]


def test_csv_column_order_is_unchanged() -> None:
    assert DEAL_CSV_COLUMNS == (
        "deal_id",
        "name",
        "account_id",
        "owner_id",
        "amount",
        "currency",
        "stage",
        "pipeline",
        "forecast_category",
        "close_date",
        "created_at",
        "deal_type",
        "status",
        "deleted",
        "version",
        "valid_from",
        "valid_to",
        "splits",
        "properties",
    )


def test_read_model_answers_every_csv_column() -> None:
    assert set(DealOut.model_fields) == set(DEAL_CSV_COLUMNS)
    assert set(FIELD_NAMES) < set(DealOut.model_fields)


def test_read_model_requires_every_field_and_allows_null_unless_never_null() -> None:
    schema = DealOut.model_json_schema(mode="serialization")
    assert set(FIELD_NAMES) <= set(schema["required"])
    for field in DEAL_FIELDS:
        accepts_null = {"type": "null"} in schema["properties"][field.name].get("anyOf", [])
        assert accepts_null is field.nullable, field.name


def test_event_model_matches_the_definition() -> None:
    assert event_model_mismatches(DealFields, deal_event_type, others=("properties",)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"region": (str | None, None)}, "fields are"),
        ({"amount": (str | None, None)}, "amount: type"),
        ({"stage": (str | None, Field(None, max_length=200))}, "stage: constraints"),
        ({"status": (DealFields.model_fields["status"].annotation, None)}, "status: description"),
        ({"name": (str | None, ...)}, "name: must default to None"),
    ],
    ids=["extra field", "wrong type", "lost limit", "lost description", "required"],
)
def test_event_model_that_differs_is_named(change: dict[str, Any], problem: str) -> None:
    model: type[BaseModel] = create_model("Drifted", __base__=DealFields, **change)
    problems = event_model_mismatches(model, deal_event_type, others=("properties",))
    assert any(p.startswith(problem) for p in problems), problems


def test_event_model_missing_a_field_is_named() -> None:
    problems = event_model_mismatches(DealFields, deal_event_type, others=())
    assert problems == [
        f"fields are {(*FIELD_NAMES, 'properties')}, the definition says {FIELD_NAMES}"
    ]


def _as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """The row as PostgreSQL gives it back: JSON parameters sent as text come back parsed."""
    json_columns = [f.name for f in DEAL_FIELDS if f.kind is Kind.SPLITS] + ["properties"]
    return {**row, **{c: orjson.loads(row[c]) for c in json_columns if row[c] is not None}}


def test_event_with_every_field_survives_fold_row_and_read_model() -> None:
    assert set(EVERY_FIELD) == {"deal_id", *FIELD_NAMES, "properties"}
    event = validate_event(
        {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "test://deal-fields",
            "type": CREATED,
            "time": "2024-01-02T03:04:05Z",
            "sequence": 7,
            "data": EVERY_FIELD,
        }
    )
    assert isinstance(event.payload, DealCreated)
    [version] = extend_versions(None, [to_change(event)], RULES)
    sent = event.payload.changed_fields()
    assert version.state.values == {k: v for k, v in sent.items() if k != "properties"}

    row = deal_row(version)
    assert row["amount"] == Decimal("1234.50")
    assert row["close_date"] == date(2024, 3, 31)
    assert row["created_at"] == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    stored = _as_stored(row)
    back = _version_from_row(stored)
    assert back.state.properties == EVERY_FIELD["properties"]
    assert {**back.state.values, "created_at": sent["created_at"]} == version.state.values
    assert datetime.fromisoformat(back.state.values["created_at"]) == row["created_at"]

    read = DealOut.model_validate(Deal(**stored)).model_dump(mode="json")
    assert {name: read[name] for name in sent} == sent
    assert read["deal_id"] == "deal-all"
    assert read["version"] == 1
