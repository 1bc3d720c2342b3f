"""ARM resources and operations of a region; resource groups, resource index and principals of
a front door.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = sa.String(512)


def upgrade() -> None:
    op.create_table(
        "arm_resources",
        sa.Column("key", KEY, primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("resource_group", sa.String(90), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("id", KEY, nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("engine_id", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("unique_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_arm_resources_scope",
        "arm_resources",
        ["subscription", "type", "resource_group", "key"],
    )
    op.create_table(
        "arm_operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("resource_key", KEY, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_arm_operations_status", "arm_operations", ["status"])
    op.create_table(
        "resource_groups",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("name", sa.String(90), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_resource_groups_subscription", "resource_groups", ["subscription", "key"])
    op.create_table(
        "resource_index",
        sa.Column("key", KEY, primary_key=True),
        sa.Column("region", sa.String(64), nullable=False),
    )
    op.create_table(
        "principals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "role_assignments",
        sa.Column(
            "principal_id",
            sa.String(36),
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("subscription", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "role_assignments",
        "principals",
        "resource_index",
        "resource_groups",
        "arm_operations",
        "arm_resources",
    ):
        op.drop_table(table)
