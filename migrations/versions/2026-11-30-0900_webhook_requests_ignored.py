"""webhook requests: why items were ignored

Revision ID: 7c1e2a9d4b60
Revises: 0fc173dcb914
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '7c1e2a9d4b60'
down_revision: str | None = '0fc173dcb914'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('webhook_requests', sa.Column('ignored', postgresql.JSONB(astext_type=sa.Text()), nullable=True), schema='pipeline')


def downgrade() -> None:
    op.drop_column('webhook_requests', 'ignored', schema='pipeline')
