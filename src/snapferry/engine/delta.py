"""A chunk delta: which pages of which chunks a copy must set (changed) or zero (cleared).

It is the plan of a copy between regions, computed from metadata alone by the source
(``Engine.plan_copy``) and applied by the target (``Engine.stage_import``): the pages changed
between an *anchor* snapshot and the copied one, or every non-zero page when there is no anchor.
Bitmaps are packed, ``(n, 128)`` per array, chunks sorted and unique. ``encode`` gives a compact
binary form (zstd: delta bitmaps are mostly zero bytes) that travels and is stored as it is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zstandard

from snapferry.engine import bitmaps
from snapferry.errors import IntegrityError
from snapferry.settings import BITMAP_BYTES, PAGE

_HEAD = struct.Struct("<4sQ")
_MAGIC = b"SFCD"


@dataclass(frozen=True)
class ChunkDelta:
    """Pages to set (``changed``) and to zero (``cleared``), chunk by chunk."""

    chunks: npt.NDArray[np.uint64]
    changed: bitmaps.Packed
    cleared: bitmaps.Packed

    @classmethod
    def empty(cls) -> ChunkDelta:
        none = np.zeros((0, BITMAP_BYTES), dtype=np.uint8)
        return cls(np.zeros(0, dtype=np.uint64), none, none.copy())

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def changed_pages(self) -> int:
        return int(bitmaps.popcount(self.changed).sum())

    @property
    def changed_bytes(self) -> int:
        """Bytes of data the delta carries (cleared pages carry none)."""
        return self.changed_pages * PAGE

    def take(self, rows: npt.NDArray[np.int64] | slice) -> ChunkDelta:
        return ChunkDelta(self.chunks[rows], self.changed[rows], self.cleared[rows])

    def without(self, chunks: npt.NDArray[np.uint64]) -> ChunkDelta:
        """The delta minus the given chunks (those a resumed copy already holds)."""
        return self.take(np.flatnonzero(~np.isin(self.chunks, chunks)))

    def batches(self, max_pages: int) -> Iterator[ChunkDelta]:
        """Consecutive pieces of about ``max_pages`` changed pages each (a chunk never splits)."""
        counts = np.cumsum(bitmaps.popcount(self.changed))
        start = 0
        while start < len(self.chunks):
            base = int(counts[start - 1]) if start else 0
            end = max(int(np.searchsorted(counts, base + max_pages, side="right")), start + 1)
            yield self.take(slice(start, end))
            start = end

    def encode(self) -> bytes:
        raw = b"".join(
            [
                _HEAD.pack(_MAGIC, len(self.chunks)),
                self.chunks.astype("<u8").tobytes(),
                np.ascontiguousarray(self.changed).tobytes(),
                np.ascontiguousarray(self.cleared).tobytes(),
            ]
        )
        return zstandard.ZstdCompressor(level=3).compress(raw)

    @classmethod
    def decode(cls, blob: bytes) -> ChunkDelta:
        """The delta encoded in blob; IntegrityError if it is not one."""
        try:
            raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 34)
            magic, n = _HEAD.unpack_from(raw)
            if magic != _MAGIC or len(raw) != _HEAD.size + n * (8 + 2 * BITMAP_BYTES):
                raise ValueError("bad header")
        except (ValueError, struct.error, zstandard.ZstdError) as exc:
            raise IntegrityError(f"a copy plan is unreadable: {exc}") from None
        pos = _HEAD.size
        chunks = np.frombuffer(raw, "<u8", n, pos).astype(np.uint64)
        pos += 8 * n
        changed = np.frombuffer(raw, np.uint8, n * BITMAP_BYTES, pos).reshape(n, BITMAP_BYTES)
        pos += n * BITMAP_BYTES
        cleared = np.frombuffer(raw, np.uint8, n * BITMAP_BYTES, pos).reshape(n, BITMAP_BYTES)
        if len(chunks) > 1 and not bool(np.all(chunks[1:] > chunks[:-1])):
            raise IntegrityError("a copy plan's chunks are not sorted")
        return cls(chunks, changed.copy(), cleared.copy())
