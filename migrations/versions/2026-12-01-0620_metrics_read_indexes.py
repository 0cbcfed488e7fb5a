"""metrics read indexes: open deals and a year's creations read from an index alone

Revision ID: 9d4b6e1f3a27
Revises: 5b8d3e1f6a27
Create Date: 2026-12-01 06:10:00

A metrics read runs its open counts and created pipeline beside the stage totals on a
2-core machine, so their CPU is the stage totals' wall time. The open count scanned all
1 M deals (130-160 ms, three processes) for the 150 k open ones; it now reads the partial
index `ix_deals_open` (open, not deleted: owner, currency, amount; 6 MB at 1 M deals,
22-32 ms). The created pipeline read the heap of `deal_creations` for a year's 336 k
rows (110-150 ms); `ix_deal_creations_created_on` now carries owner, currency and amount
(39 MB instead of 9 MB, 60-68 ms, index-only). benchmarks/RESULTS.md, "Issue 8 metrics
for a year, third pass".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9d4b6e1f3a27'
down_revision: str | None = '5b8d3e1f6a27'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status = 'open' AND deleted IS FALSE")


def upgrade() -> None:
    op.create_index(
        'ix_deals_open', 'deals', ['owner_id'], unique=False, schema='forecast',
        postgresql_include=['currency', 'amount'], postgresql_where=_OPEN,
    )
    op.drop_index('ix_deal_creations_created_on', table_name='deal_creations', schema='forecast')
    op.create_index(
        'ix_deal_creations_created_on', 'deal_creations', ['created_on'], unique=False,
        schema='forecast', postgresql_include=['owner_id', 'currency', 'amount'],
    )


def downgrade() -> None:
    op.drop_index('ix_deal_creations_created_on', table_name='deal_creations', schema='forecast')
    op.create_index(
        'ix_deal_creations_created_on', 'deal_creations', ['created_on'], unique=False,
        schema='forecast',
    )
    op.drop_index('ix_deals_open', table_name='deals', schema='forecast')
