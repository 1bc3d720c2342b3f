"""Initial schema: snapshots, block-map segments, disks, head pages, packs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", ID, primary_key=True),
        sa.Column("family_id", ID, nullable=False),
        sa.Column("disk_id", ID, nullable=True),
        sa.Column("parent_id", ID, sa.ForeignKey("snapshots.id"), nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("incremental", sa.Boolean, nullable=False),
        sa.Column("self_contained", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("frozen_gen", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_snapshots_parent", "snapshots", ["parent_id"])
    op.create_index("ix_snapshots_family", "snapshots", ["family_id", "seq"])
    op.create_table(
        "map_segments",
        sa.Column(
            "snapshot_id",
            ID,
            sa.ForeignKey("snapshots.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("segment", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entries", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "disks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("family_id", ID, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("base_id", ID, sa.ForeignKey("snapshots.id"), nullable=True),
        sa.Column("head_gen", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_disks_base", "disks", ["base_id"])
    op.create_table(
        "head_pages",
        sa.Column("disk_id", ID, sa.ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("gen", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("bitmap", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "packs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("dead_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in ("packs", "head_pages", "disks", "map_segments", "snapshots"):
        op.drop_table(table)
