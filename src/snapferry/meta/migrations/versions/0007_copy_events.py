"""``copy_events``: what happened to each copy, in order (see ``meta.schema``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copy_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("target_key", sa.String(512), nullable=False),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_copy_events_target", "copy_events", ["target_key", "id"])
    op.create_index("ix_copy_events_at", "copy_events", ["at"])


def downgrade() -> None:
    op.drop_table("copy_events")
