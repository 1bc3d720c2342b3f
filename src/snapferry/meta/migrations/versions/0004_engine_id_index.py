"""Indexes on ``arm_resources.engine_id`` and ``unique_id``: the data plane finds a SAS's
resource by the first and a diff's ``prevsnapshot`` by the second.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_arm_resources_engine_id", "arm_resources", ["engine_id"])
    op.create_index("ix_arm_resources_unique_id", "arm_resources", ["unique_id"])


def downgrade() -> None:
    op.drop_index("ix_arm_resources_unique_id", table_name="arm_resources")
    op.drop_index("ix_arm_resources_engine_id", table_name="arm_resources")
