"""forecast summary: stage visits and creation facts of the deals, for metrics and inspection

Revision ID: 8b3f1c2d9e47
Revises: 5d0c7e93a1b4
Create Date: 2026-11-30 17:30:00

`stage_visits` (one row per visit of a closed deal to a stage) and `deal_creations` (each
deal's creation day and first owner, currency and amount) are kept by the forecast
worker's summariser from the deals and their versions, off the apply path, with
`summary_marks` saying how far it has read (benchmarks/RESULTS.md, "Metrics from a
summary"). They start empty: the summariser fills them from every deal on its first
catch-up.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '8b3f1c2d9e47'
down_revision: str | None = '5d0c7e93a1b4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'stage_visits',
        sa.Column('deal_id', sa.Text(), nullable=False),
        sa.Column('visit', sa.Integer(), nullable=False),
        sa.Column('close_date', sa.Date(), nullable=False),
        sa.Column('owner_id', sa.Text(), nullable=True),
        sa.Column('currency', sa.Text(), nullable=True),
        sa.Column('stage', sa.Text(), nullable=False),
        sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('days', sa.Double(), nullable=True),
        sa.Column('first_visit', sa.Boolean(), nullable=False),
        sa.Column('later_stages', postgresql.ARRAY(sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint('deal_id', 'visit', name=op.f('pk_stage_visits')),
        schema='forecast',
    )
    op.create_index(
        'ix_stage_visits_close_date', 'stage_visits', ['close_date'], unique=False,
        schema='forecast',
        postgresql_include=[
            'owner_id', 'currency', 'stage', 'days', 'first_visit', 'later_stages'
        ],
    )
    op.create_table(
        'deal_creations',
        sa.Column('deal_id', sa.Text(), nullable=False),
        sa.Column('created_on', sa.Date(), nullable=False),
        sa.Column('owner_id', sa.Text(), nullable=True),
        sa.Column('currency', sa.Text(), nullable=True),
        sa.Column('amount', sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint('deal_id', name=op.f('pk_deal_creations')),
        schema='forecast',
    )
    op.create_index(
        'ix_deal_creations_created_on', 'deal_creations', ['created_on'], unique=False,
        schema='forecast',
    )
    op.create_table(
        'summary_marks',
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('through', sa.DateTime(timezone=True), nullable=False),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_summary_marks')),
        schema='forecast',
    )


def downgrade() -> None:
    op.drop_table('summary_marks', schema='forecast')
    op.drop_index('ix_deal_creations_created_on', table_name='deal_creations', schema='forecast')
    op.drop_table('deal_creations', schema='forecast')
    op.drop_index('ix_stage_visits_close_date', table_name='stage_visits', schema='forecast')
    op.drop_table('stage_visits', schema='forecast')
