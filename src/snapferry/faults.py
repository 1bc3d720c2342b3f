"""Storage faults named: what an ``OSError``, a store error or a database error raised on the
region's own storage means, as a ``StorageFault`` the edges answer with a stable code (and log
once a minute, never a traceback per request).

ENOSPC/EDQUOT is ``StorageFull``, EROFS ``StorageReadOnly``, EIO ``StorageIOError``; SQLite's
"database or disk is full", "attempt to write a readonly database" and "disk I/O error", and
PostgreSQL's SQLSTATE 53100 (disk full), the same. Anything else is not a storage fault.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator

from snapferry.errors import (
    SnapferryError,
    StorageFault,
    StorageFull,
    StorageIOError,
    StorageReadOnly,
    StoreError,
)
from snapferry.throttled import Throttled

log = logging.getLogger("snapferry.storage")
THROTTLED = Throttled(log)

_BY_ERRNO: dict[int, type[StorageFault]] = {
    errno.ENOSPC: StorageFull,
    errno.EDQUOT: StorageFull,
    errno.EROFS: StorageReadOnly,
    errno.EIO: StorageIOError,
}
_BY_NAME = {errno.errorcode[n]: kind for n, kind in _BY_ERRNO.items()}
_DATABASE = (
    ("database or disk is full", StorageFull),
    ("no space left on device", StorageFull),
    ("readonly database", StorageReadOnly),
    ("read-only file system", StorageReadOnly),
    ("disk i/o error", StorageIOError),
)
_MESSAGES = {
    StorageFull: "the region's storage is full; deleting disks or snapshots frees space",
    StorageReadOnly: "the region's storage is read-only for now; reads still work",
    StorageIOError: "the region's storage failed to read or write",
}


def storage_fault(exc: BaseException) -> StorageFault | None:
    """The storage fault exc is or was caused by, if any. A typed snapferry error other than a
    store's says what it means itself, whatever it was raised while handling."""
    if isinstance(exc, StorageFault):
        return exc
    if isinstance(exc, SnapferryError) and not isinstance(exc, StoreError):
        return None
    for cause in _chain(exc):
        if isinstance(cause, StorageFault):
            return cause
        kind = _kind(cause)
        if kind is not None:
            return kind(_MESSAGES[kind])
    return None


def named(exc: BaseException) -> SnapferryError | None:
    """What exc stands for at an edge: its storage fault (reported, once a minute per kind), or
    itself when it is a snapferry error; None for an unexpected error (the caller logs it)."""
    fault = storage_fault(exc)
    if fault is not None:
        report(fault, exc)
        return fault
    return exc if isinstance(exc, SnapferryError) else None


def brief(exc: BaseException) -> str:
    """exc in a few words for a log line: its storage fault's code, else its type and text."""
    fault = storage_fault(exc)
    return fault.code if fault is not None else f"{type(exc).__name__}: {exc}"


def report(fault: StorageFault, cause: BaseException) -> None:
    """Log a fault once a minute per kind (how many more since), its cause in one line."""
    THROTTLED.warn(fault.code, "%s: %s", fault.code, _one_line(cause))


def _kind(exc: BaseException) -> type[StorageFault] | None:
    if isinstance(exc, OSError) and exc.errno in _BY_ERRNO:
        return _BY_ERRNO[exc.errno]
    if isinstance(exc, StoreError):
        return _BY_NAME.get(str(exc.details.get("errno", "")))
    if getattr(exc, "sqlstate", None) == "53100" or getattr(exc, "pgcode", None) == "53100":
        return StorageFull
    if (
        type(exc).__name__ in ("OperationalError", "DiskFull")
        and getattr(exc, "orig", None) is None
    ):
        # the driver's own error (SQLAlchemy's wrapper quotes the statement's parameters, which
        # may hold anything a client sent: its ``orig`` is looked at instead)
        text = str(exc).lower()
        for words, kind in _DATABASE:
            if words in text:
                return kind
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc, what it wraps (a database driver's error) and what caused it, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        context = None if item.__suppress_context__ else item.__context__
        nearby = (getattr(item, "orig", None), item.__cause__, context)
        todo.extend(nxt for nxt in nearby if isinstance(nxt, BaseException))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
