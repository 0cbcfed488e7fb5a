"""forecast read indexes: close-date ranges of deals and versions read from the index alone

Revision ID: 72ec7979f78e
Revises: 0412f253219e
Create Date: 2026-11-30 14:30:00

The roll-up (live and as_of), the waterfall and the metrics read one close-date range of
`forecast.deals` or `forecast.deal_versions`: with the columns they sum carried in the
index (INCLUDE), that range is an index-only scan rather than a heap read of wide rows.
`ix_deals_close_date` is replaced by its covering form; `ix_deal_versions_close_date` is
new (benchmarks/RESULTS.md, "Forecast query benchmark").
"""

from collections.abc import Sequence

from alembic import op

revision: str = '72ec7979f78e'
down_revision: str | None = '0412f253219e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUP = ['owner_id', 'currency', 'status', 'stage', 'pipeline', 'forecast_category', 'amount', 'deleted']


def upgrade() -> None:
    op.drop_index('ix_deals_close_date', table_name='deals', schema='forecast')
    op.create_index(
        'ix_deals_close_date', 'deals', ['close_date'], unique=False, schema='forecast',
        postgresql_include=[*_ROLLUP, 'deal_id', 'created_at'],
    )
    op.create_index(
        'ix_deal_versions_close_date', 'deal_versions', ['close_date'], unique=False,
        schema='forecast', postgresql_include=['valid_from', 'valid_to', *_ROLLUP, 'deal_id'],
    )


def downgrade() -> None:
    op.drop_index('ix_deal_versions_close_date', table_name='deal_versions', schema='forecast')
    op.drop_index('ix_deals_close_date', table_name='deals', schema='forecast')
    op.create_index('ix_deals_close_date', 'deals', ['close_date'], unique=False, schema='forecast')
