"""unpublishable events and re-sync job leases

Revision ID: 5b1e7c2d9a40
Revises: 7c1e2a9d4b60
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b1e7c2d9a40'
down_revision: str | None = '7c1e2a9d4b60'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('events', sa.Column('unpublishable_at', sa.DateTime(timezone=True), nullable=True), schema='pipeline')
    op.add_column('events', sa.Column('unpublishable_error', sa.Text(), nullable=True), schema='pipeline')
    op.create_index('ix_events_unpublishable', 'events', ['seq'], unique=False, schema='pipeline', postgresql_where=sa.text('unpublishable_at IS NOT NULL'))
    # The relay's claim filters on both columns; an index whose condition matches it keeps
    # its plan an ordered index scan even before the table has statistics (a bitmap scan
    # never clears the dead entries each published row leaves behind).
    op.drop_index('ix_events_unpublished', table_name='events', schema='pipeline')
    op.create_index('ix_events_unpublished', 'events', ['seq'], unique=False, schema='pipeline', postgresql_where=sa.text('published_at IS NULL AND unpublishable_at IS NULL'))
    op.add_column('resync_jobs', sa.Column('lease_owner', sa.Text(), nullable=True), schema='pipeline')
    op.add_column('resync_jobs', sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True), schema='pipeline')
    op.add_column('resync_jobs', sa.Column('attempts', sa.BigInteger(), server_default='0', nullable=False), schema='pipeline')
    op.create_index('ix_resync_jobs_running', 'resync_jobs', ['lease_expires_at'], unique=False, schema='pipeline', postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('ix_resync_jobs_running', table_name='resync_jobs', schema='pipeline', postgresql_where=sa.text("status = 'running'"))
    op.drop_column('resync_jobs', 'attempts', schema='pipeline')
    op.drop_column('resync_jobs', 'lease_expires_at', schema='pipeline')
    op.drop_column('resync_jobs', 'lease_owner', schema='pipeline')
    op.drop_index('ix_events_unpublishable', table_name='events', schema='pipeline', postgresql_where=sa.text('unpublishable_at IS NOT NULL'))
    op.drop_index('ix_events_unpublished', table_name='events', schema='pipeline')
    op.create_index('ix_events_unpublished', 'events', ['seq'], unique=False, schema='pipeline', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_column('events', 'unpublishable_error', schema='pipeline')
    op.drop_column('events', 'unpublishable_at', schema='pipeline')
