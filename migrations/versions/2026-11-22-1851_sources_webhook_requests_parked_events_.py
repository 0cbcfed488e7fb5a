"""sources webhook requests parked events resync jobs

Revision ID: d8487822ab5e
Revises: d65385528c57
Create Date: 2026-11-22 18:51:40.634699
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'd8487822ab5e'
down_revision: str | None = 'd65385528c57'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('parked_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('request_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('replayable', sa.Boolean(), nullable=False),
    sa.Column('change', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parked_events')),
    schema='pipeline'
    )
    op.create_index('ix_parked_events_open', 'parked_events', ['source_id', 'id'], unique=False, schema='pipeline', postgresql_where=sa.text('replayed_at IS NULL'))
    op.create_table('resync_jobs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('crm_ids', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('progress', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resync_jobs')),
    schema='pipeline'
    )
    op.create_index('ix_resync_jobs_pending', 'resync_jobs', ['id'], unique=False, schema='pipeline', postgresql_where=sa.text("status = 'pending'"))
    op.create_table('sources',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('account_id', sa.Text(), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources')),
    sa.UniqueConstraint('kind', 'account_id', name=op.f('uq_sources_kind_account_id')),
    schema='pipeline'
    )
    op.create_table('webhook_requests',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_requests')),
    schema='pipeline'
    )
    op.create_index('ix_webhook_requests_source_id', 'webhook_requests', ['source_id', 'id'], unique=False, schema='pipeline')


def downgrade() -> None:
    op.drop_index('ix_webhook_requests_source_id', table_name='webhook_requests', schema='pipeline')
    op.drop_table('webhook_requests', schema='pipeline')
    op.drop_table('sources', schema='pipeline')
    op.drop_index('ix_resync_jobs_pending', table_name='resync_jobs', schema='pipeline', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('resync_jobs', schema='pipeline')
    op.drop_index('ix_parked_events_open', table_name='parked_events', schema='pipeline', postgresql_where=sa.text('replayed_at IS NULL'))
    op.drop_table('parked_events', schema='pipeline')
