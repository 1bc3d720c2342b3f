"""Raw disk images in and out: sparse-aware import into a new disk, sparse export of any view.

Import skips the file's holes (SEEK_DATA/SEEK_HOLE) and its all-zero pages, so a 1 TiB sparse file
holding 100 MiB of data reads about 100 MiB and stores no zeros. Export writes only non-zero pages
into a sparse file of the view's size. Both stream in bounded pieces.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from snapferry.engine import bitmaps
from snapferry.engine.core import Engine
from snapferry.engine.models import DiskInfo
from snapferry.engine.resolve import View, allocated_chunks
from snapferry.engine.versions import nonzero_rows
from snapferry.errors import InvalidInput
from snapferry.settings import CHUNK, PAGE, SECTOR

PIECE = 32 * 1024 * 1024
Progress = Callable[[int, int], None]


@dataclass
class TransferReport:
    size_bytes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` byte ranges of a file that hold data (everything else is a hole)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        pos = end


def import_image(
    engine: Engine, path: Path, size_bytes: int | None = None, progress: Progress | None = None
) -> tuple[DiskInfo, TransferReport]:
    """A new disk holding the raw image at path. Its size is the file's (rounded up to 512 bytes)
    unless size_bytes asks for more."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise InvalidInput(f"cannot open image {path}: {exc.strerror}") from None
    try:
        file_size = os.fstat(fd).st_size
        size = -(-file_size // SECTOR) * SECTOR if size_bytes is None else size_bytes
        if size < file_size:
            raise InvalidInput(f"image {path} ({file_size} bytes) does not fit in {size} bytes")
        if size == 0:
            raise InvalidInput(f"image {path} is empty")
        disk = engine.create_disk(size)
        report = TransferReport(size_bytes=size)
        batch = _Batch(engine, disk.id, report)
        for start, end in data_extents(fd, file_size):
            pos = start - start % PAGE
            while pos < end:
                n = min(batch.room(), end - pos)
                got = os.preadv(fd, [batch.take(n)], pos)
                report.bytes_read += got
                batch.add(pos, got)
                pos += n
                if progress is not None:
                    progress(pos, file_size)
        batch.flush()
        return disk, report
    finally:
        os.close(fd)


class _Batch:
    """Pieces of an image read into one buffer, written with one durability barrier when full."""

    def __init__(self, engine: Engine, disk_id: str, report: TransferReport) -> None:
        self.engine, self.disk_id, self.report = engine, disk_id, report
        self.buf = np.empty(PIECE, dtype=np.uint8)
        self.fill = 0
        self.writes: list[tuple[int, memoryview]] = []

    def room(self) -> int:
        if self.fill >= PIECE:
            self.flush()
        return PIECE - self.fill

    def take(self, n: int) -> memoryview:
        return memoryview(self.buf.data)[self.fill : self.fill + n]

    def add(self, pos: int, got: int) -> None:
        """Queue the non-zero pages of the ``got`` bytes just read at image offset pos."""
        lo = self.fill
        padded = -(-got // SECTOR) * SECTOR
        self.buf[lo + got : lo + padded] = 0
        whole = padded - padded % PAGE
        pages = self.buf[lo : lo + whole].reshape(-1, PAGE)
        keep = np.flatnonzero(nonzero_rows(pages)).astype(np.int64)
        view = memoryview(self.buf.data)
        for first, count in bitmaps.runs(keep):
            a, b = lo + first * PAGE, lo + (first + count) * PAGE
            self.writes.append((pos + first * PAGE, view[a:b]))
        if padded > whole and self.buf[lo + whole : lo + padded].any():
            self.writes.append((pos + whole, view[lo + whole : lo + padded]))
        self.fill += padded

    def flush(self) -> None:
        if self.writes:
            self.engine.write_many(self.disk_id, self.writes)
            self.report.bytes_written += sum(len(w) for _, w in self.writes)
        self.writes, self.fill = [], 0


def export_image(
    engine: Engine, view: View, path: Path, progress: Progress | None = None
) -> TransferReport:
    """Write the view's content to path as a sparse raw image (replacing the file)."""
    report = TransferReport(size_bytes=view.size_bytes)
    tmp = path.with_name(f".{path.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, view.size_bytes)
        chunks = allocated_chunks(view).tolist()
        for done, chunk in enumerate(chunks, 1):
            data = engine.chunks.materialize(view, chunk)
            base = chunk * CHUNK
            limit = view.size_bytes - base
            for first, count in bitmaps.runs(np.flatnonzero(nonzero_rows(data)).astype(np.int64)):
                lo, hi = first * PAGE, min((first + count) * PAGE, limit)
                if hi > lo:
                    piece = memoryview(data.reshape(-1).data)[lo:hi]
                    written = 0
                    while written < len(piece):
                        written += os.pwrite(fd, piece[written:], base + lo + written)
                    report.bytes_written += hi - lo
            if progress is not None:
                progress(done, len(chunks))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return report
