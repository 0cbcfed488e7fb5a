"""computed reps: the day each rep's ledger was last computed for

Revision ID: 7c2e5a9d4b18
Revises: 9d4b6e1f3a27
Create Date: 2026-12-01 10:10:00

A stored simulation compares a draft plan with the plans as they are. For a rep whose
ledger is current, that side is what the ledger already holds, if it was computed for the
simulation's day or an equivalent one: the posting transaction now records that day per
rep. Reps without a row (every rep before this revision) are computed as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c2e5a9d4b18'
down_revision: str | None = '9d4b6e1f3a27'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'computed_reps',
        sa.Column('rep_id', sa.Text(), nullable=False),
        sa.Column('computed_for', sa.Date(), nullable=False),
        sa.Column(
            'computed_at',
            sa.DateTime(timezone=True),
            server_default=sa.text('now()'),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint('rep_id', name=op.f('pk_computed_reps')),
        schema='comp',
    )


def downgrade() -> None:
    op.drop_table('computed_reps', schema='comp')
