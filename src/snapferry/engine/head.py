"""A disk head: the pages written since the disk's last snapshot.

Each head *generation* keeps its pages in sparse overlay files (one per ``OVERLAY_SPAN`` of the
disk, written at the pages' own offsets) and a per-chunk page bitmap saying which pages it holds.
The bitmap is the authority: an overlay page not marked in it is ignored. Taking a snapshot
*freezes* the generation (the snapshot seals it) and starts the next one, so the point in time is
fixed at the request and writes go on at once.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from snapferry.settings import OVERLAY_SPAN, PAGE


class Overlay:
    """Sparse files under ``root`` holding written pages at their disk offsets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._unsynced: set[int] = set()

    def _path(self, span: int) -> Path:
        return self.root / f"span-{span:03d}.ovl"

    def write(self, offset: int, data: memoryview) -> None:
        """Write page-aligned data at its disk offset (not yet durable: call ``sync``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        pos = 0
        while pos < len(data):
            span, inner = divmod(offset + pos, OVERLAY_SPAN)
            n = min(len(data) - pos, OVERLAY_SPAN - inner)
            fd = os.open(self._path(span), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                done = 0
                while done < n:
                    done += os.pwrite(fd, data[pos + done : pos + n], inner + done)
            finally:
                os.close(fd)
            self._unsynced.add(span)
            pos += n

    def sync(self) -> None:
        """Make every write so far durable."""
        for span in sorted(self._unsynced):
            fd = os.open(self._path(span), os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        if self._unsynced:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._unsynced.clear()

    def gather(self, pages: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The content of the given disk pages, ``(n, 4096)``, in the order given."""
        out = np.empty((len(pages), PAGE), dtype=np.uint8)
        if len(pages) == 0:
            return out
        per_span = OVERLAY_SPAN // PAGE
        spans = pages // per_span
        for span in np.unique(spans).tolist():
            sel = np.flatnonzero(spans == span)
            local = pages[sel] - span * per_span
            path = self._path(span)
            size = path.stat().st_size if path.exists() else 0
            have = size // PAGE
            inside = local < have
            if have:
                mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(have, PAGE))
                out[sel[inside]] = mm[local[inside]]
                del mm
            out[sel[~inside]] = 0
        return out

    def remove(self) -> None:
        """Delete the overlay's files."""
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Head:
    """One head generation: its overlay and, per chunk, a 1024-page mask of what it holds."""

    disk_id: str
    gen: int
    overlay: Overlay
    dirty: dict[int, npt.NDArray[np.bool_]] = field(default_factory=dict)
    _index: npt.NDArray[np.uint64] | None = None

    def mark(self, masks: dict[int, npt.NDArray[np.bool_]]) -> None:
        """Record that the pages in masks (replacing the chunks' old masks) are now held."""
        if any(c not in self.dirty for c in masks):
            self._index = None
        self.dirty.update(masks)

    def chunk_index(self) -> npt.NDArray[np.uint64]:
        """Sorted indices of the chunks this generation holds pages of."""
        if self._index is None:
            self._index = np.array(sorted(self.dirty), dtype=np.uint64)
        return self._index

    def dirty_arrays(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
        """Sorted dirty chunk indices and their ``(n, 1024)`` page masks."""
        chunks = self.chunk_index()
        if len(chunks) == 0:
            return chunks, np.zeros((0, 1024), dtype=bool)
        return chunks, np.stack([self.dirty[int(c)] for c in chunks])


def head_root(data_dir: Path, disk_id: str, gen: int) -> Path:
    """Where generation ``gen`` of a disk's head keeps its overlay."""
    return data_dir / "heads" / disk_id / f"gen-{gen:06d}"
