"""Metadata: the region's SQL schema (``schema``), opening and migrating it (``db``).

The engine reads and writes these tables through SQLAlchemy Core only, so the same code runs on
SQLite (the embedded default: WAL, foreign keys on, FULL sync) and PostgreSQL.
"""
