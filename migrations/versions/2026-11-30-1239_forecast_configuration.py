"""forecast configuration: settings and stage rules

Revision ID: e633c157706b
Revises: 3f8a6d2c1b57
Create Date: 2026-11-30 12:39:10.042949
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'e633c157706b'
down_revision: str | None = '3f8a6d2c1b57'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('forecast_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year_start_month', sa.Integer(), nullable=False),
    sa.Column('default_pipeline', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('fiscal_year_start_month BETWEEN 1 AND 12', name=op.f('ck_forecast_settings_start_month')),
    sa.CheckConstraint('id = 1', name=op.f('ck_forecast_settings_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_settings')),
    schema='forecast'
    )
    op.create_table('stage_config',
    sa.Column('pipeline', sa.Text(), nullable=False),
    sa.Column('stage', sa.Text(), nullable=False),
    sa.Column('pipeline_position', sa.Integer(), nullable=False),
    sa.Column('stage_order', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Numeric(), nullable=False),
    sa.Column('forecast_category', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('required_fields', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.CheckConstraint('probability BETWEEN 0 AND 100', name=op.f('ck_stage_config_probability')),
    sa.PrimaryKeyConstraint('pipeline', 'stage', name=op.f('pk_stage_config')),
    schema='forecast'
    )


def downgrade() -> None:
    op.drop_table('stage_config', schema='forecast')
    op.drop_table('forecast_settings', schema='forecast')
