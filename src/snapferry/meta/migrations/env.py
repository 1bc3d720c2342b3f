"""Alembic environment: migrations run on the connection snapferry hands over."""

from __future__ import annotations

from alembic import context

from snapferry.meta.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("snapferry migrations run through snapferry.meta.db.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
