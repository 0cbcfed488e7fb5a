"""dead letters: at most one open letter per event and reason (unique partial index);
forecast_settings.replayed_for, the version whose dead-letter replay finished

Revision ID: 5d0c7e93a1b4
Revises: 72ec7979f78e
Create Date: 2026-11-30 15:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0c7e93a1b4"
down_revision: str | None = "72ec7979f78e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A stored document's replay ran inside its PUT until now: every version was replayed.
    op.add_column(
        "forecast_settings",
        sa.Column("replayed_for", sa.DateTime(timezone=True), nullable=True),
        schema="forecast",
    )
    op.execute("UPDATE forecast.forecast_settings SET replayed_for = updated_at")
    # Open duplicates the former check-then-insert let through (two members storing the
    # same refusal at once): the oldest letter stands for the event, the rest go.
    op.execute(
        """
        DELETE FROM forecast.dead_letters AS d
        USING forecast.dead_letters AS kept
        WHERE d.replayed_at IS NULL AND kept.replayed_at IS NULL
          AND d.event_id IS NOT NULL
          AND d.event_source = kept.event_source
          AND d.event_id = kept.event_id
          AND d.reason = kept.reason
          AND kept.id < d.id
        """
    )
    op.create_index(
        "uq_dead_letters_open_event",
        "dead_letters",
        ["event_source", "event_id", sa.literal_column("md5(reason)")],
        unique=True,
        schema="forecast",
        postgresql_where=sa.text("replayed_at IS NULL AND event_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_column("forecast_settings", "replayed_for", schema="forecast")
    op.drop_index(
        "uq_dead_letters_open_event",
        table_name="dead_letters",
        schema="forecast",
        postgresql_where=sa.text("replayed_at IS NULL AND event_id IS NOT NULL"),
    )
