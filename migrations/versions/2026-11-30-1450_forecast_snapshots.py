"""forecast snapshots: the roll-up frozen per instant, per grouping and group

Revision ID: 0412f253219e
Revises: 8c41e2a7d903
Create Date: 2026-11-30 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0412f253219e'
down_revision: str | None = '8c41e2a7d903'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('snapshots',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('taken_by', sa.Text(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('weekly', 'period_end', 'on_demand', 'backfill')", name=op.f('ck_snapshots_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshots')),
    schema='forecast'
    )
    op.create_index('ix_snapshots_period', 'snapshots', ['period_start', 'period_end', 'as_of', 'id'], unique=False, schema='forecast')
    op.create_index('ux_snapshots_slot', 'snapshots', ['period_start', 'period_end', 'as_of', 'kind'], unique=True, schema='forecast', postgresql_where=sa.text("kind <> 'on_demand'"))
    op.create_table('snapshot_rows',
    sa.Column('snapshot_id', sa.BigInteger(), nullable=False),
    sa.Column('group_by', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('group', sa.Text(), nullable=True),
    sa.Column('currency', sa.Text(), nullable=True),
    sa.Column('closed_won', sa.Numeric(), nullable=False),
    sa.Column('commit', sa.Numeric(), nullable=False),
    sa.Column('best_case', sa.Numeric(), nullable=False),
    sa.Column('pipeline', sa.Numeric(), nullable=False),
    sa.Column('omitted', sa.Numeric(), nullable=False),
    sa.Column('commit_plus_closed', sa.Numeric(), nullable=False),
    sa.Column('best_case_plus_commit_plus_closed', sa.Numeric(), nullable=False),
    sa.Column('weighted', sa.Numeric(), nullable=False),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('unmapped', sa.Numeric(), nullable=False),
    sa.Column('unmapped_count', sa.Integer(), nullable=False),
    sa.Column('quota', sa.Numeric(), nullable=True),
    sa.Column('attainment', sa.Numeric(), nullable=True),
    sa.Column('gap_to_quota', sa.Numeric(), nullable=True),
    sa.Column('coverage', sa.Numeric(), nullable=True),
    sa.Column('call_commit', sa.Numeric(), nullable=True),
    sa.Column('call_best_case', sa.Numeric(), nullable=True),
    sa.Column('call_pipeline', sa.Numeric(), nullable=True),
    sa.Column('call_author', sa.Text(), nullable=True),
    sa.Column('call_recorded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('adjustment_commit', sa.Numeric(), nullable=True),
    sa.Column('adjustment_best_case', sa.Numeric(), nullable=True),
    sa.Column('adjustment_pipeline', sa.Numeric(), nullable=True),
    sa.CheckConstraint("group_by IN ('rep', 'team', 'manager', 'region')", name=op.f('ck_snapshot_rows_group_by')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['forecast.snapshots.id'], name=op.f('fk_snapshot_rows_snapshot_id_snapshots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('snapshot_id', 'group_by', 'position', name=op.f('pk_snapshot_rows')),
    schema='forecast'
    )


def downgrade() -> None:
    op.drop_table('snapshot_rows', schema='forecast')
    op.drop_index('ux_snapshots_slot', table_name='snapshots', schema='forecast', postgresql_where=sa.text("kind <> 'on_demand'"))
    op.drop_index('ix_snapshots_period', table_name='snapshots', schema='forecast')
    op.drop_table('snapshots', schema='forecast')
