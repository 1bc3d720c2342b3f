"""``head_pages`` no longer cascade from ``disks``: a deleted disk's frozen head generation keeps
its bitmap rows while its snapshot waits to seal (a seal the storage refused); the engine
deletes a disk's other rows itself.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(32)


def _table(name: str, *, cascade: bool) -> None:
    disk_id = (
        sa.Column("disk_id", ID, sa.ForeignKey("disks.id", ondelete="CASCADE"), primary_key=True)
        if cascade
        else sa.Column("disk_id", ID, primary_key=True)
    )
    op.create_table(
        name,
        disk_id,
        sa.Column("gen", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("bitmap", sa.LargeBinary, nullable=False),
    )


def _rebuild(*, cascade: bool) -> None:
    _table("head_pages_next", cascade=cascade)
    op.execute(
        "INSERT INTO head_pages_next (disk_id, gen, chunk, bitmap) "
        "SELECT disk_id, gen, chunk, bitmap FROM head_pages"
    )
    op.drop_table("head_pages")
    op.rename_table("head_pages_next", "head_pages")


def upgrade() -> None:
    _rebuild(cascade=False)


def downgrade() -> None:
    op.execute("DELETE FROM head_pages WHERE disk_id NOT IN (SELECT id FROM disks)")
    _rebuild(cascade=True)
