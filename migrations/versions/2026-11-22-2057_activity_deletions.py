"""activity deletions

Revision ID: 0fc173dcb914
Revises: d18363eb6ca2
Create Date: 2026-11-22 20:57:20.870240
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0fc173dcb914'
down_revision: str | None = 'd18363eb6ca2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('activities', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True), schema='forecast')
    # A deletion that arrives before its activity is stored with neither of them known.
    op.alter_column('activities', 'kind', existing_type=sa.TEXT(), nullable=True, schema='forecast')
    op.alter_column('activities', 'occurred_at', existing_type=postgresql.TIMESTAMP(timezone=True), nullable=True, schema='forecast')


def downgrade() -> None:
    # Rows that hold only a deletion cannot meet the old NOT NULL columns.
    op.execute("DELETE FROM forecast.activities WHERE kind IS NULL OR occurred_at IS NULL")
    op.alter_column('activities', 'occurred_at', existing_type=postgresql.TIMESTAMP(timezone=True), nullable=False, schema='forecast')
    op.alter_column('activities', 'kind', existing_type=sa.TEXT(), nullable=False, schema='forecast')
    op.drop_column('activities', 'deleted_at', schema='forecast')
