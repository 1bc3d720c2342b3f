"""Head journal: overwrites of held pages are journaled so a crash leaves old or new content.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "head_journal",
        sa.Column(
            "disk_id",
            sa.String(32),
            sa.ForeignKey("disks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("gen", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pages", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("head_journal")
