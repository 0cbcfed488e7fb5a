"""event log and deal projection

Revision ID: d65385528c57
Revises: 
Create Date: 2026-11-22 17:57:56.814398
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'd65385528c57'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS pipeline")
    op.execute("CREATE SCHEMA IF NOT EXISTS forecast")
    op.create_table('broker_incarnations',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('republished_events', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broker_incarnations')),
    schema='pipeline'
    )
    op.create_table('events',
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('partition_key', sa.Text(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('envelope', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('source', 'event_id', name=op.f('uq_events_source_event_id')),
    schema='pipeline'
    )
    op.create_index('ix_events_unpublished', 'events', ['seq'], unique=False, schema='pipeline', postgresql_where=sa.text('published_at IS NULL'))
    op.create_table('activities',
    sa.Column('activity_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('deal_id', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Text(), nullable=True),
    sa.Column('rep_id', sa.Text(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_activities')),
    schema='forecast'
    )
    op.create_index('ix_activities_deal_id', 'activities', ['deal_id'], unique=False, schema='forecast')
    op.create_table('consumer_offsets',
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('next_offset', sa.BigInteger(), nullable=False),
    sa.Column('incarnation', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('group_id', 'topic', 'partition', name=op.f('pk_consumer_offsets')),
    schema='forecast'
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('event_source', sa.Text(), nullable=True),
    sa.Column('event_id', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    schema='forecast'
    )
    op.create_index('ix_dead_letters_open', 'dead_letters', ['id'], unique=False, schema='forecast', postgresql_where=sa.text('replayed_at IS NULL'))
    op.create_table('deal_changes',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('deal_id', sa.Text(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Numeric(precision=31, scale=0), nullable=False),
    sa.Column('fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'event_id', name=op.f('pk_deal_changes')),
    schema='forecast'
    )
    op.create_index('ix_deal_changes_deal_id', 'deal_changes', ['deal_id'], unique=False, schema='forecast')
    op.create_table('deal_versions',
    sa.Column('deal_id', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Text(), nullable=True),
    sa.Column('owner_id', sa.Text(), nullable=True),
    sa.Column('amount', sa.Numeric(), nullable=True),
    sa.Column('currency', sa.Text(), nullable=True),
    sa.Column('stage', sa.Text(), nullable=True),
    sa.Column('pipeline', sa.Text(), nullable=True),
    sa.Column('forecast_category', sa.Text(), nullable=True),
    sa.Column('close_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deal_type', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('splits', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Numeric(precision=31, scale=0), nullable=False),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('deal_id', 'version', name=op.f('pk_deal_versions')),
    schema='forecast'
    )
    op.create_index('ix_deal_versions_valid_from', 'deal_versions', ['valid_from'], unique=False, schema='forecast')
    op.create_table('deals',
    sa.Column('deal_id', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Text(), nullable=True),
    sa.Column('owner_id', sa.Text(), nullable=True),
    sa.Column('amount', sa.Numeric(), nullable=True),
    sa.Column('currency', sa.Text(), nullable=True),
    sa.Column('stage', sa.Text(), nullable=True),
    sa.Column('pipeline', sa.Text(), nullable=True),
    sa.Column('forecast_category', sa.Text(), nullable=True),
    sa.Column('close_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deal_type', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('splits', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Numeric(precision=31, scale=0), nullable=False),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('deal_id', name=op.f('pk_deals')),
    schema='forecast'
    )
    op.create_index('ix_deals_close_date', 'deals', ['close_date'], unique=False, schema='forecast')
    op.create_index('ix_deals_owner_id', 'deals', ['owner_id'], unique=False, schema='forecast')
    op.create_index('ix_deals_stage', 'deals', ['stage'], unique=False, schema='forecast')
    op.create_index('ix_deals_updated_at', 'deals', ['updated_at', 'deal_id'], unique=False, schema='forecast')


def downgrade() -> None:
    op.drop_index('ix_deals_updated_at', table_name='deals', schema='forecast')
    op.drop_index('ix_deals_stage', table_name='deals', schema='forecast')
    op.drop_index('ix_deals_owner_id', table_name='deals', schema='forecast')
    op.drop_index('ix_deals_close_date', table_name='deals', schema='forecast')
    op.drop_table('deals', schema='forecast')
    op.drop_index('ix_deal_versions_valid_from', table_name='deal_versions', schema='forecast')
    op.drop_table('deal_versions', schema='forecast')
    op.drop_index('ix_deal_changes_deal_id', table_name='deal_changes', schema='forecast')
    op.drop_table('deal_changes', schema='forecast')
    op.drop_index('ix_dead_letters_open', table_name='dead_letters', schema='forecast', postgresql_where=sa.text('replayed_at IS NULL'))
    op.drop_table('dead_letters', schema='forecast')
    op.drop_table('consumer_offsets', schema='forecast')
    op.drop_index('ix_activities_deal_id', table_name='activities', schema='forecast')
    op.drop_table('activities', schema='forecast')
    op.drop_index('ix_events_unpublished', table_name='events', schema='pipeline', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_table('events', schema='pipeline')
    op.drop_table('broker_incarnations', schema='pipeline')
    op.execute("DROP SCHEMA IF EXISTS forecast")
    op.execute("DROP SCHEMA IF EXISTS pipeline")
