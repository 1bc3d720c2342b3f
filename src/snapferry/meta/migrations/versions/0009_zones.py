"""``zones``: the region's zones, each with a store of its own (none: one store, LRS only).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zones",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("added_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("zones")
