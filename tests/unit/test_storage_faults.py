"""Storage faults get names: real errors from the OS, the local store and SQLite (through
SQLAlchemy, as the region meets them) map to StorageFull, StorageReadOnly, StorageIOError."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from snapferry.errors import (
    InvalidInput,
    StorageFull,
    StorageIOError,
    StorageReadOnly,
    StoreError,
)
from snapferry.faults import THROTTLED, report, storage_fault


def test_os_errors_are_named_by_errno() -> None:
    assert isinstance(storage_fault(OSError(errno.ENOSPC, "No space")), StorageFull)
    assert isinstance(storage_fault(OSError(errno.EDQUOT, "Quota")), StorageFull)
    assert isinstance(storage_fault(OSError(errno.EROFS, "Read-only")), StorageReadOnly)
    assert isinstance(storage_fault(OSError(errno.EIO, "I/O")), StorageIOError)
    assert storage_fault(OSError(errno.ENOENT, "missing")) is None
    assert storage_fault(InvalidInput("bad")) is None


def test_store_errors_are_named_by_the_errno_they_carry() -> None:
    """The local store tags each failure with its errno's name (``store.local``)."""
    full = StoreError("put 'packs/x' failed: No space left on device (ENOSPC)", errno="ENOSPC")
    assert isinstance(storage_fault(full), StorageFull)
    assert isinstance(storage_fault(StoreError("put", errno="EROFS")), StorageReadOnly)
    assert storage_fault(StoreError("put", errno="EEXIST")) is None


def seal() -> None:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as inner:
        raise RuntimeError("sealing failed") from inner


def test_wrapped_causes_are_found() -> None:
    with pytest.raises(RuntimeError) as caught:
        seal()
    assert isinstance(storage_fault(caught.value), StorageFull)


def test_a_full_sqlite_database_is_storage_full(tmp_path: Path) -> None:
    db = create_engine(f"sqlite+pysqlite:///{tmp_path / 'full.db'}")
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE t (v BLOB)"))
    with db.begin() as conn:
        conn.execute(text("PRAGMA max_page_count = 3"))
        insert = text("INSERT INTO t VALUES (zeroblob(65536))")
        with pytest.raises(OperationalError) as caught:
            conn.execute(insert)
    assert isinstance(storage_fault(caught.value), StorageFull)
    db.dispose()


def test_a_read_only_sqlite_database_is_storage_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (v)").connection.commit()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    assert isinstance(storage_fault(caught.value), StorageReadOnly)


def test_reports_come_once_a_minute_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    THROTTLED._last.clear()
    with caplog.at_level(logging.WARNING, logger="snapferry.storage"):
        for _ in range(50):
            report(StorageFull("full"), OSError(errno.ENOSPC, "No space left on device"))
        report(StorageReadOnly("ro"), OSError(errno.EROFS, "Read-only file system"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("StorageFull: OSError") and "\n" not in lines[0]


def refuse_while_handling_enospc() -> None:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise InvalidInput("the request was bad anyway") from None


def test_a_typed_error_says_what_it_means_whatever_it_was_handling() -> None:
    with pytest.raises(InvalidInput) as caught:
        refuse_while_handling_enospc()
    assert storage_fault(caught.value) is None
