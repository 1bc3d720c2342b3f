"""The Alembic migrations build exactly the schema that snapferry.meta.schema declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from snapferry.meta.db import open_database, sqlite_url
from snapferry.meta.schema import metadata


def test_migrated_database_matches_the_declared_schema(tmp_path: Path) -> None:
    engine = open_database(sqlite_url(tmp_path / "meta.db"))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diffs == []


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "meta.db")
    open_database(url).dispose()
    engine = open_database(url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0009"
    engine.dispose()
