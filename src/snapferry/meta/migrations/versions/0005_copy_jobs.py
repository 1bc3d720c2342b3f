"""``copy_jobs``: durable CopyStart jobs of a target region (see ``meta.schema``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copy_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("target_key", sa.String(512), nullable=False, unique=True),
        sa.Column("target_id", sa.String(32), nullable=False),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source_resource_id", sa.String(512), nullable=False),
        sa.Column("source_region", sa.String(64), nullable=False),
        sa.Column("source_unique_id", sa.String(36), nullable=False),
        sa.Column("source_engine_id", sa.String(32), nullable=False),
        sa.Column("source_family", sa.String(32), nullable=True),
        sa.Column("source_created_at", sa.Float, nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("enhanced", sa.Boolean, nullable=False),
        sa.Column("access", sa.Text, nullable=True),
        sa.Column("base_id", sa.String(32), nullable=True),
        sa.Column("anchor_id", sa.String(32), nullable=True),
        sa.Column("plan", sa.LargeBinary, nullable=True),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("bytes_staged", sa.BigInteger, nullable=False),
        sa.Column("bytes_transferred", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("last_progress_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_copy_jobs_state", "copy_jobs", ["state", "next_attempt_at"])
    op.create_index("ix_copy_jobs_family", "copy_jobs", ["source_family", "state"])
    op.create_index("ix_copy_jobs_subscription", "copy_jobs", ["subscription", "state"])


def downgrade() -> None:
    op.drop_table("copy_jobs")
