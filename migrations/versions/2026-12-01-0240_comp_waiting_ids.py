"""comp.waiting rows get an id, so operators can list and replay them as dead letters

Revision ID: 7c1e4a9d2b60
Revises: 025b7b32c2a2
Create Date: 2026-12-01 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7c1e4a9d2b60'
down_revision: str | None = '025b7b32c2a2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'waiting',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        schema='comp',
    )
    op.create_unique_constraint(op.f('uq_waiting_id'), 'waiting', ['id'], schema='comp')


def downgrade() -> None:
    op.drop_constraint(op.f('uq_waiting_id'), 'waiting', schema='comp', type_='unique')
    op.drop_column('waiting', 'id', schema='comp')
