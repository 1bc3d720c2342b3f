"""``versions``: the version index (frame id → pack, offset, length). The engine fills it from
the block maps when it opens a region whose index is still empty (see ``Engine.open``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("oid", sa.LargeBinary(32), primary_key=True),
        sa.Column(
            "pack", sa.Integer, sa.ForeignKey("packs.id"), primary_key=True, autoincrement=False
        ),
        sa.Column("offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("length", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_versions_pack", "versions", ["pack"])


def downgrade() -> None:
    op.drop_table("versions")
