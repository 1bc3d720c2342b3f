"""A disk head: the pages written since the disk's last snapshot.

Each head *generation* keeps its pages in sparse overlay files (one per ``OVERLAY_SPAN`` of the
disk, written at the pages' own offsets) and a per-chunk page bitmap saying which pages it holds.
The bitmap is the authority: an overlay page not marked in it is ignored. Taking a snapshot
*freezes* the generation (the snapshot seals it) and starts the next one, so the point in time is
fixed at the request and writes go on at once.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from snapferry.engine.bitmaps import run_arrays
from snapferry.files import pwrite_direct
from snapferry.settings import BITMAP_BYTES, OVERLAY_SPAN, PAGE

_log = logging.getLogger(__name__)
DIRECT_MIN = 256 * 1024
"""Overlay writes at least this big are made around the page cache (where it is allowed)."""


class Overlay:
    """Sparse files under ``root`` holding written pages at their disk offsets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._unsynced: dict[int, int] = {}
        """Span → open descriptor, for the spans written since the last ``sync``."""
        self._created = False
        """Whether a span file was made since the last ``sync`` (its name needs a sync too)."""

    def _path(self, span: int) -> Path:
        return self.root / f"span-{span:03d}.ovl"

    def write(self, offset: int, data: memoryview) -> None:
        """Write page-aligned data at its disk offset (not yet durable: call ``sync``, which
        also closes the files this opened)."""
        pos = 0
        while pos < len(data):
            span, inner = divmod(offset + pos, OVERLAY_SPAN)
            n = min(len(data) - pos, OVERLAY_SPAN - inner)
            fd = self._unsynced.get(span)
            if fd is None:
                fd = self._unsynced[span] = self._open(span)
            # a big write goes around the page cache: filling fresh cache pages was most of
            # an upload's CPU here (bench/dataplane_throughput.py)
            done = (
                pwrite_direct(self._path(span), data[pos : pos + n], inner)
                if n >= DIRECT_MIN
                else 0
            )
            while done < n:
                done += os.pwrite(fd, data[pos + done : pos + n], inner + done)
            pos += n

    def _open(self, span: int) -> int:
        try:
            return os.open(self._path(span), os.O_WRONLY)
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            self._created = True
            return os.open(self._path(span), os.O_WRONLY | os.O_CREAT, 0o600)

    def write_runs(self, first: int, data: memoryview, mask: npt.NDArray[np.bool_]) -> None:
        """Write the pages of data (which starts at page ``first``) that mask selects, one
        ``pwrite`` per run of selected pages."""
        firsts, counts = run_arrays(np.flatnonzero(mask).astype(np.int64))
        for lo, count in zip(firsts.tolist(), counts.tolist(), strict=True):
            self.write((first + lo) * PAGE, data[lo * PAGE : (lo + count) * PAGE])

    def sync(self) -> None:
        """Make every write so far durable."""
        if not self._unsynced:
            return
        try:
            for fd in self._unsynced.values():
                os.fdatasync(fd)
            if self._created:  # a new file's name is durable once its directory is synced
                fd = os.open(self.root, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._created = False
        finally:
            for fd in self._unsynced.values():
                os.close(fd)
            self._unsynced.clear()

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.bin"

    def write_journal(self, parts: list[memoryview]) -> None:
        """Make the journal file hold exactly parts, durably (before its row commits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for part in parts:
                done = 0
                while done < len(part):
                    done += os.write(fd, part[done:])
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def replay_journal(self, pages: npt.NDArray[np.int64]) -> None:
        """Copy the journal's pages (in the order written) to their places, durably. Repeatable."""
        fd = os.open(self.journal_path, os.O_RDONLY)
        try:
            data = np.empty((len(pages), PAGE), dtype=np.uint8)
            if os.preadv(fd, [memoryview(data.data)], 0) != data.nbytes:
                raise OSError(f"journal {self.journal_path} is shorter than its committed row")
        finally:
            os.close(fd)
        view = memoryview(data.data).cast("B")
        row = 0
        firsts, counts = run_arrays(pages)  # runs of consecutive pages, in journal order
        for first, count in zip(firsts.tolist(), counts.tolist(), strict=True):
            self.write(first * PAGE, view[row * PAGE : (row + count) * PAGE])
            row += count
        self.sync()

    def gather(self, pages: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The content of the given disk pages (sorted, unique), ``(n, 4096)``, in that order.

        One ``pread`` per run of consecutive pages, the runs and their places worked out with
        numpy first so the loop does nothing else: scattered pages cost a syscall each, which
        measured cheaper here than faulting them in through a mapping of a sparse file."""
        out = np.zeros((len(pages), PAGE), dtype=np.uint8)
        if len(pages) == 0:
            return out
        per_span = OVERLAY_SPAN // PAGE
        firsts, counts = run_arrays(pages)
        spans = firsts // per_span
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])) * PAGE
        ends = starts + counts * PAGE
        offsets = (firsts - spans * per_span) * PAGE
        flat = memoryview(out.data).cast("B")
        for span in np.unique(spans).tolist():
            fd = self._open_span(span)
            if fd < 0:
                continue  # never written: the pages stay zero
            sel = spans == span
            try:
                for lo, hi, at in zip(
                    starts[sel].tolist(), ends[sel].tolist(), offsets[sel].tolist(), strict=True
                ):
                    os.preadv(fd, [flat[lo:hi]], at)  # a short read leaves zeros (file end)
            finally:
                os.close(fd)
        return out

    def _open_span(self, span: int) -> int:
        try:
            return os.open(self._path(span), os.O_RDONLY)
        except FileNotFoundError:
            return -1

    def remove(self) -> None:
        """Delete the overlay's files."""
        shutil.rmtree(self.root, ignore_errors=True)


class Head:
    """One head generation: its overlay and, per chunk, a packed 1024-page bitmap of the pages it
    holds. The bitmaps live in one growing array so a seal takes them all in one step."""

    def __init__(self, disk_id: str, gen: int, overlay: Overlay) -> None:
        self.disk_id, self.gen, self.overlay = disk_id, gen, overlay
        self.retired = False
        """Set before the overlay is discarded (its pages sealed, or its disk deleted): a read
        that used this generation afterwards may have seen zeros and must be redone."""
        self._rows: dict[int, int] = {}
        self._bits = np.zeros((16, BITMAP_BYTES), dtype=np.uint8)
        self._index: npt.NDArray[np.uint64] | None = None

    def bits(self, chunk: int) -> npt.NDArray[np.uint8] | None:
        """The packed bitmap of chunk (a copy), or None if this generation holds none of it."""
        row = self._rows.get(chunk)
        return None if row is None else self._bits[row].copy()

    def mask(self, chunk: int) -> npt.NDArray[np.bool_] | None:
        """The 1024-page mask of chunk, or None if this generation holds none of its pages."""
        row = self._rows.get(chunk)
        return None if row is None else np.unpackbits(self._bits[row]).astype(bool)

    def mark(self, masks: dict[int, npt.NDArray[np.uint8]]) -> None:
        """Record that the pages in packed bitmaps (replacing the chunks' old ones) are held."""
        for chunk, packed in masks.items():
            row = self._rows.get(chunk)
            if row is None:
                # the row's bits exist before the row is published: readers (``mask``, without
                # the disk lock) never index past the array
                row = len(self._rows)
                if row == len(self._bits):
                    self._bits = np.concatenate((self._bits, np.zeros_like(self._bits)))
                self._bits[row] = packed
                self._rows[chunk] = row
                self._index = None
            else:
                self._bits[row] = packed

    def held_bytes(self) -> int:
        """Bytes of the pages this generation holds."""
        return int(np.unpackbits(self._bits[: len(self._rows)]).sum()) * PAGE

    def chunk_index(self) -> npt.NDArray[np.uint64]:
        """Sorted indices of the chunks this generation holds pages of."""
        if self._index is None:
            self._index = np.array(sorted(self._rows), dtype=np.uint64)
        return self._index

    def dirty_arrays(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
        """Sorted chunk indices and their ``(n, 128)`` packed page bitmaps."""
        chunks = np.fromiter(self._rows.keys(), dtype=np.uint64, count=len(self._rows))
        rows = np.fromiter(self._rows.values(), dtype=np.int64, count=len(self._rows))
        order = np.argsort(chunks)
        return chunks[order], self._bits[rows[order]]


def head_root(data_dir: Path, disk_id: str, gen: int) -> Path:
    """Where generation ``gen`` of a disk's head keeps its overlay."""
    return data_dir / "heads" / disk_id / f"gen-{gen:06d}"


class Trash:
    """Deletes things in the background, off the snapshot's critical path.

    Removing a sealed head's overlay can take seconds (a sparse file of thousands of scattered
    extents, on a filesystem that discards freed blocks), so the directory is renamed into
    ``root`` at once and deleted by a daemon thread, which also runs other deferred clean-ups
    (``later``). Clean-ups must be safe to skip: whatever a crash leaves is redone at the next
    open.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="snapferry-trash", daemon=True)
        self._thread.start()

    def discard(self, path: Path) -> None:
        """Move path out of the way now; delete it soon."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / uuid.uuid4().hex
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        self.later(lambda: shutil.rmtree(target, ignore_errors=True))

    def later(self, task: Callable[[], None]) -> None:
        """Run task on the background thread."""
        self._tasks.put(task)

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                task()
            except Exception:
                _log.warning("background clean-up failed", exc_info=True)
            finally:
                self._tasks.task_done()

    def drain(self) -> None:
        """Wait until the clean-ups queued so far are done (benchmarks call this so that one
        measurement does not pay for the previous one's deletes)."""
        self._tasks.join()

    def empty(self) -> None:
        """Delete everything in the trash now."""
        if self.root.is_dir():
            for entry in self.root.iterdir():
                shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        """Finish queued clean-ups and stop the thread."""
        self._tasks.put(None)
        self._thread.join()
