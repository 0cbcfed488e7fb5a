"""The ledger is append-only in the database itself: the service's own role cannot change
or remove a line, so a correction can only be a new line."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine

pytestmark = pytest.mark.integration

INSERT = text(
    "INSERT INTO comp.ledger_lines (rep_id, period, posted_period, kind, rule, deal_id, "
    "booking, role, amount, currency, trace) VALUES (:rep, '2027-Q1', '2027-Q1', "
    "'commission', 'c', 'd', 1, 'owner', 12.50, 'USD', '{}') RETURNING id"
)


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE comp.ledger_lines SET amount = 0 WHERE id = :id", "UPDATE"),
        ("DELETE FROM comp.ledger_lines WHERE id = :id", "DELETE"),
    ],
)
async def test_the_service_role_cannot_change_a_line(
    database_url: str, statement: str, operation: str
) -> None:
    engine = create_engine(database_url, application_name="salesops-comp-test")
    try:
        async with engine.begin() as conn:
            line_id = (await conn.execute(INSERT, {"rep": f"rep-{uuid.uuid4()}"})).scalar_one()
        with pytest.raises(DBAPIError, match=f"append-only: {operation} refused"):
            async with engine.begin() as conn:
                await conn.execute(text(statement), {"id": line_id})
        async with engine.connect() as conn:
            amount = (
                await conn.execute(
                    text("SELECT amount FROM comp.ledger_lines WHERE id = :id"), {"id": line_id}
                )
            ).scalar_one()
        assert amount == Decimal("12.50")
    finally:
        await engine.dispose()
