"""The front door's resource index is a cache: a front door whose database refuses writes (full,
read-only) still routes and answers, and says so once a minute instead of failing requests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from snapferry.api.frontdoor.routing import Index
from snapferry.faults import THROTTLED
from snapferry.meta.db import migrate, open_database, sqlite_url


def test_an_index_that_cannot_be_written_still_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(sqlite_url(tmp_path / "frontdoor.db"))
    migrate(db)
    Index(db).set("k1", "eastus")
    db.dispose()
    read_only = create_engine(
        f"sqlite+pysqlite:///file:{tmp_path / 'frontdoor.db'}?mode=ro&uri=true"
    )
    index = Index(read_only)
    THROTTLED._last.clear()
    with caplog.at_level(logging.WARNING, logger="snapferry.storage"):
        index.set("k2", "westus")  # refused by the database: no error for the request
        index.drop("k1")
    assert index.get("k1") == "eastus" and index.get("k2") is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "StorageReadOnly" in lines[0], lines
    read_only.dispose()
