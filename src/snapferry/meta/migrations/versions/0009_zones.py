"""Zones: ``zones`` lists the region's zones, each with a store of its own (none: one store);
``packs.zone`` and ``snapshots.zone`` say where a pack lies and where a snapshot's packs go —
NULL: in every zone (zone-redundant, or the single store), a zone's name: in that zone only
(locally redundant).

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
    with op.batch_alter_table("packs") as batch:
        batch.add_column(sa.Column("zone", sa.String(16), nullable=True))
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("zone", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("zone")
    with op.batch_alter_table("packs") as batch:
        batch.drop_column("zone")
    op.drop_table("zones")
