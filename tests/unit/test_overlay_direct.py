"""A disk's big writes go to its overlay around the page cache (O_DIRECT), and read back
exactly — also where the filesystem refuses O_DIRECT, and where they overwrite pages an earlier
write put in the same generation (the journal's path)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from snapferry import files
from snapferry.engine import Engine
from snapferry.testing.direct_io import direct_io_works

MiB = 1024**2


@pytest.mark.parametrize("refused", [False, True])
def test_big_writes_bypass_the_cache_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    real_open, real_pwrite, direct = os.open, os.pwrite, []

    def spy_pwrite(fd: int, data: memoryview, offset: int) -> int:
        written = real_pwrite(fd, data, offset)
        if fcntl.fcntl(fd, fcntl.F_GETFL) & files.O_DIRECT:
            direct.append(written)
        return written

    def no_direct(path: str, flags: int, *args: int) -> int:
        if flags & files.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "pwrite", spy_pwrite)
    if refused:
        monkeypatch.setattr(os, "open", no_direct)
    with Engine.open(tmp_path / "region") as engine:
        disk = engine.create_disk(64 * MiB)
        first = os.urandom(4 * MiB)
        engine.write(disk.id, 8 * MiB, first)  # a fresh run of pages
        again = os.urandom(4 * MiB)
        engine.write(disk.id, 8 * MiB + 4096, again)  # over pages this generation holds
        small = os.urandom(8192)
        engine.write(disk.id, 0, small)  # through the cache
        expected = bytearray(64 * MiB)
        expected[8 * MiB : 12 * MiB] = first
        expected[8 * MiB + 4096 : 12 * MiB + 4096] = again
        expected[:8192] = small
        assert engine.read(disk.id, 0, 64 * MiB) == expected
        snap = engine.create_snapshot(disk.id)
        assert engine.read_snapshot(snap.id, 0, 64 * MiB) == expected
    if refused or not direct_io_works(tmp_path):
        assert direct == []
    else:
        assert sum(direct) >= 4 * MiB
