"""Small files written safely: keys, certificates, ``cloud.json``.

Every write goes to a temp file in the same directory with its final mode, is fsynced, put in
place, and the directory fsynced, so a crash leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_with(path: Path, data: bytes, mode: int) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace path with data, atomically and durably."""
    tmp = _temp_with(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_if_absent(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Durably create path holding data unless it exists; True if written. Never replaces a
    file, even one a concurrent writer made first (the filesystem must support hard links)."""
    tmp = _temp_with(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return True


def read_or_create(path: Path, make: Callable[[], bytes], *, mode: int = 0o600) -> bytes:
    """path's content, creating it with make()'s bytes first if it is missing. Processes that
    race here all read the one file that won."""
    if not path.exists():
        write_if_absent(path, make(), mode=mode)
    return path.read_bytes()
