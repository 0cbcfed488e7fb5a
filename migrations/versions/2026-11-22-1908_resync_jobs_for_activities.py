"""resync jobs for activities

Revision ID: d18363eb6ca2
Revises: d8487822ab5e
Create Date: 2026-11-22 19:08:11.693213
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd18363eb6ca2'
down_revision: str | None = 'd8487822ab5e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('resync_jobs', sa.Column('activity_kind', sa.Text(), nullable=True), schema='pipeline')


def downgrade() -> None:
    op.drop_column('resync_jobs', 'activity_kind', schema='pipeline')
