"""period close holds: the lines a period's close found on hold, kept with the close

Revision ID: 5b8d3e1f6a27
Revises: 4e9a2c7b1d05
Create Date: 2026-12-01 06:10:00

A closed period's statement is frozen, but which of its lines were held was read from the
holds as they are now, so releasing a hold after the close changed the closed statement
(its held, payable and balance totals). The close now records the ids of the period's
lines it found on hold (and so did not pay), and the statement of a closed period reads
them. Periods closed before this revision have none recorded (NULL) and keep the live
reading.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '5b8d3e1f6a27'
down_revision: str | None = '4e9a2c7b1d05'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'period_closes',
        sa.Column('held_line_ids', postgresql.ARRAY(sa.BigInteger()), nullable=True),
        schema='comp',
    )


def downgrade() -> None:
    op.drop_column('period_closes', 'held_line_ids', schema='comp')
