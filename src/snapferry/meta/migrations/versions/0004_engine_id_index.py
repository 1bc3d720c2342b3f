"""An index on ``arm_resources.engine_id``: the data plane finds a SAS's resource by it.

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


def downgrade() -> None:
    op.drop_index("ix_arm_resources_engine_id", table_name="arm_resources")
