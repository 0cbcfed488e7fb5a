"""forecast calls and adjustments, append-only

Revision ID: 7c2e9a41d5b3
Revises: e633c157706b
Create Date: 2026-11-30 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c2e9a41d5b3'
down_revision: str | None = 'e633c157706b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ('calls', 'adjustments')


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('rep_id', sa.Text(), nullable=False),
    sa.Column('commit', sa.Numeric(), nullable=True),
    sa.Column('best_case', sa.Numeric(), nullable=True),
    sa.Column('pipeline', sa.Numeric(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('author', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('num_nonnulls(commit, best_case, pipeline) > 0', name=op.f('ck_calls_some_category')),
    sa.CheckConstraint('commit >= 0 AND best_case >= 0 AND pipeline >= 0', name=op.f('ck_calls_not_negative')),
    sa.CheckConstraint('char_length(note) <= 255', name=op.f('ck_calls_note')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    schema='forecast'
    )
    op.create_index('ix_calls_period_rep', 'calls', ['period_start', 'period_end', 'rep_id', 'recorded_at', 'id'], unique=False, schema='forecast')
    op.create_table('adjustments',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('target_kind', sa.Text(), nullable=False),
    sa.Column('target_id', sa.Text(), nullable=False),
    sa.Column('category', sa.Text(), nullable=False),
    sa.Column('amount', sa.Numeric(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('author', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("target_kind IN ('rep', 'team')", name=op.f('ck_adjustments_target_kind')),
    sa.CheckConstraint("category IN ('commit', 'best_case', 'pipeline')", name=op.f('ck_adjustments_category')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_adjustments_not_negative')),
    sa.CheckConstraint('char_length(note) BETWEEN 1 AND 255', name=op.f('ck_adjustments_note')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustments')),
    schema='forecast'
    )
    op.create_index('ix_adjustments_period_target', 'adjustments', ['period_start', 'period_end', 'target_kind', 'target_id', 'category', 'recorded_at', 'id'], unique=False, schema='forecast')
    # Append-only, whoever connects: history is never rewritten, not even by the owner role.
    op.execute("""
        CREATE FUNCTION forecast.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'forecast.% is append-only: % is refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
    """)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON forecast.{table} "
            "FOR EACH ROW EXECUTE FUNCTION forecast.refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON forecast.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION forecast.refuse_change()"
        )


def downgrade() -> None:
    op.drop_index('ix_adjustments_period_target', table_name='adjustments', schema='forecast')
    op.drop_table('adjustments', schema='forecast')
    op.drop_index('ix_calls_period_rep', table_name='calls', schema='forecast')
    op.drop_table('calls', schema='forecast')
    op.execute("DROP FUNCTION forecast.refuse_change()")
