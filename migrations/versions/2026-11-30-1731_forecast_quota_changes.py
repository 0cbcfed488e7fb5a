"""forecast quota_changes: every quota.set event, so that an as_of roll-up finds the
amount a quota had at its instant (the quotas table keeps only the latest)

Revision ID: 3f6b2d8e4a17
Revises: 8b3f1c2d9e47
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6b2d8e4a17"
down_revision: str | None = "8b3f1c2d9e47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quota_changes",
        sa.Column("event_source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("quota_id", sa.Text(), nullable=False),
        sa.Column("rep_id", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.Numeric(precision=31, scale=0), nullable=False),
        sa.PrimaryKeyConstraint("event_source", "event_id", name=op.f("pk_quota_changes")),
        schema="forecast",
    )
    op.create_index(
        "ix_quota_changes_quota_id",
        "quota_changes",
        ["quota_id", "event_time"],
        unique=False,
        schema="forecast",
    )
    # The one event each stored quota still shows: without it an as_of answer would lose
    # every quota set before this table existed. Earlier amounts were never kept.
    op.execute(
        """
        INSERT INTO forecast.quota_changes (event_source, event_id, quota_id, rep_id,
            team_id, period_start, period_end, amount, currency, event_time, sequence)
        SELECT event_source, event_id, quota_id, rep_id, team_id, period_start, period_end,
            amount, currency, event_time, sequence
        FROM forecast.quotas
        """
    )


def downgrade() -> None:
    op.drop_index("ix_quota_changes_quota_id", table_name="quota_changes", schema="forecast")
    op.drop_table("quota_changes", schema="forecast")
