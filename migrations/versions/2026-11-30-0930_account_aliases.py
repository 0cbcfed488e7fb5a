"""account aliases for CRM account merges

Revision ID: 3f8a6d2c1b57
Revises: 5b1e7c2d9a40
Create Date: 2026-11-30 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '3f8a6d2c1b57'
down_revision: str | None = '5b1e7c2d9a40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'account_aliases',
        sa.Column('source_id', sa.Text(), nullable=False),
        sa.Column('merged_id', sa.Text(), nullable=False),
        sa.Column('survivor_id', sa.Text(), nullable=False),
        sa.Column('merged_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event_key', sa.Text(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('source_id', 'merged_id', name=op.f('pk_account_aliases')),
        schema='pipeline',
    )
    op.create_index('ix_account_aliases_recorded_at', 'account_aliases', ['recorded_at'], unique=False, schema='pipeline')
    op.create_index('ix_events_account', 'events', ['source', sa.text("((envelope -> 'data'::text) ->> 'account_id'::text)")], unique=False, schema='pipeline', postgresql_where=sa.text("source LIKE 'crm://%' AND envelope -> 'data' ? 'account_id'"))
    op.create_index('ix_events_account_subject', 'events', ['source', 'subject'], unique=False, schema='pipeline', postgresql_where=sa.text("source LIKE 'crm://%' AND envelope -> 'data' ? 'account_id'"))


def downgrade() -> None:
    op.drop_index('ix_events_account_subject', table_name='events', schema='pipeline')
    op.drop_index('ix_events_account', table_name='events', schema='pipeline')
    op.drop_index('ix_account_aliases_recorded_at', table_name='account_aliases', schema='pipeline')
    op.drop_table('account_aliases', schema='pipeline')
