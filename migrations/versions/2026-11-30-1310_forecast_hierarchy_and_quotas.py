"""forecast hierarchy and quotas

Revision ID: 8c41e2a7d903
Revises: 7c2e9a41d5b3
Create Date: 2026-11-30 12:39:31.392002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '8c41e2a7d903'
down_revision: str | None = '7c2e9a41d5b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('hierarchy_changes',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('entity_id', sa.Text(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Numeric(precision=31, scale=0), nullable=False),
    sa.Column('fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'event_id', name=op.f('pk_hierarchy_changes')),
    schema='forecast'
    )
    op.create_index('ix_hierarchy_changes_entity', 'hierarchy_changes', ['kind', 'entity_id'], unique=False, schema='forecast')
    op.create_table('quotas',
    sa.Column('quota_id', sa.Text(), nullable=False),
    sa.Column('rep_id', sa.Text(), nullable=True),
    sa.Column('team_id', sa.Text(), nullable=True),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Numeric(precision=31, scale=0), nullable=False),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('quota_id', name=op.f('pk_quotas')),
    schema='forecast'
    )
    op.create_index('ix_quotas_rep_id', 'quotas', ['rep_id', 'period_start'], unique=False, schema='forecast')
    op.create_index('ix_quotas_team_id', 'quotas', ['team_id', 'period_start'], unique=False, schema='forecast')
    op.create_table('rep_assignments',
    sa.Column('rep_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('team_id', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('rep_id', 'valid_from', name=op.f('pk_rep_assignments')),
    schema='forecast'
    )
    op.create_index('ix_rep_assignments_team_id', 'rep_assignments', ['team_id'], unique=False, schema='forecast')
    op.create_table('teams',
    sa.Column('team_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('parent_team_id', sa.Text(), nullable=True),
    sa.Column('manager_id', sa.Text(), nullable=True),
    sa.Column('manager_name', sa.Text(), nullable=True),
    sa.Column('region', sa.Text(), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('event_source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('team_id', 'valid_from', name=op.f('pk_teams')),
    schema='forecast'
    )


def downgrade() -> None:
    op.drop_table('teams', schema='forecast')
    op.drop_index('ix_rep_assignments_team_id', table_name='rep_assignments', schema='forecast')
    op.drop_table('rep_assignments', schema='forecast')
    op.drop_index('ix_quotas_team_id', table_name='quotas', schema='forecast')
    op.drop_index('ix_quotas_rep_id', table_name='quotas', schema='forecast')
    op.drop_table('quotas', schema='forecast')
    op.drop_index('ix_hierarchy_changes_entity', table_name='hierarchy_changes', schema='forecast')
    op.drop_table('hierarchy_changes', schema='forecast')
