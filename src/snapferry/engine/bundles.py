"""The plaintext format of a version object: one or more chunk versions in one frame.

A seal of scattered writes produces many tiny chunk versions (one 4 KiB page each, say). Hashing,
compressing and framing each of them alone would make snapshot cost grow with the number of chunks
touched instead of the bytes written, so consecutive chunk versions are *bundled*: one object, one
BLAKE3 id, one zstd frame, holding up to ``BUNDLE_TARGET`` bytes of pages. A chunk version is
addressed as (object id, slot). A version of a whole busy chunk is a bundle of one.

Layout (little-endian)::

    magic  b"SFVB"
    u8     format (1), 3 bytes reserved
    u32    count
    u64    chunk index            × count
    u8     kind (1 full, 2 patch) × count
    128 B  present bitmap         × count   pages whose data follows
    128 B  zeroed bitmap          × count   pages this version sets to zero (patches only)
    4 KiB  page data, slot by slot, page by page, present pages only

In a *full* version every page not present is zero. In a *patch* the pages neither present nor
zeroed fall through to the versions beneath it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from snapferry.errors import IntegrityError
from snapferry.settings import BITMAP_BYTES, PAGE, PAGES_PER_CHUNK

MAGIC = b"SFVB"
HEAD = struct.Struct("<4sB3xI")
KIND_ZERO, KIND_FULL, KIND_PATCH = 0, 1, 2
BUNDLE_TARGET = 1024 * 1024
"""Bundles close once their page data reaches this size (a lone bigger chunk version stays whole)."""


def build(
    chunks: npt.NDArray[np.uint64],
    kinds: npt.NDArray[np.uint8],
    present: npt.NDArray[np.uint8],
    zeroed: npt.NDArray[np.uint8],
    pages: npt.NDArray[np.uint8],
) -> list[bytes | memoryview]:
    """The content of a bundle, as a header and a view of the pages (concatenate to get the
    content; the codec hashes and compresses the parts without copying the pages). ``pages`` is
    ``(k, 4096)``: the present pages of every slot in order."""
    head = b"".join(
        [
            HEAD.pack(MAGIC, 1, len(chunks)),
            chunks.astype("<u8").tobytes(),
            kinds.astype(np.uint8).tobytes(),
            np.ascontiguousarray(present, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(zeroed, dtype=np.uint8).tobytes(),
        ]
    )
    if not pages.size:
        return [head]
    return [head, np.ascontiguousarray(pages).data.cast("B")]


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle. ``data`` is a ``(k, 4096)`` view of its present pages."""

    chunks: npt.NDArray[np.uint64]
    kinds: npt.NDArray[np.uint8]
    present: npt.NDArray[np.uint8]
    zeroed: npt.NDArray[np.uint8]
    first_row: npt.NDArray[np.int64]
    data: npt.NDArray[np.uint8]

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes) + len(self.chunks) * (2 * BITMAP_BYTES + 9)

    def slot_pages(self, slot: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.uint8]]:
        """A slot's present mask (1024 booleans) and its present pages ``(k, 4096)``."""
        mask = np.unpackbits(self.present[slot]).astype(bool)
        lo = int(self.first_row[slot])
        return mask, self.data[lo : lo + int(np.count_nonzero(mask))]


def parse(content: bytes | memoryview) -> Bundle:
    """Parse bundle content (already verified against its id). Raises IntegrityError if malformed."""
    try:
        magic, fmt, count = HEAD.unpack_from(content)
        if magic != MAGIC or fmt != 1:
            raise ValueError("bad magic")
        pos = HEAD.size
        chunks = np.frombuffer(content, "<u8", count, pos)
        pos += 8 * count
        kinds = np.frombuffer(content, np.uint8, count, pos)
        pos += count
        present = np.frombuffer(content, np.uint8, count * BITMAP_BYTES, pos).reshape(count, -1)
        pos += count * BITMAP_BYTES
        zeroed = np.frombuffer(content, np.uint8, count * BITMAP_BYTES, pos).reshape(count, -1)
        pos += count * BITMAP_BYTES
        per_slot = np.bitwise_count(present).sum(axis=1, dtype=np.int64)
        rows = int(per_slot.sum())
        data = np.frombuffer(content, np.uint8, rows * PAGE, pos).reshape(rows, PAGE)
        if pos + rows * PAGE != len(content):
            raise ValueError("trailing bytes")
    except (ValueError, struct.error) as exc:
        raise IntegrityError(f"malformed version bundle: {exc}") from None
    first_row = np.concatenate(([0], np.cumsum(per_slot)[:-1])).astype(np.int64)
    return Bundle(chunks, kinds, present, zeroed, first_row, data)


def split_points(rows_per_slot: npt.NDArray[np.int64], target_rows: int) -> list[tuple[int, int]]:
    """Group consecutive slots into ``[start, end)`` bundles of about ``target_rows`` pages each."""
    n = len(rows_per_slot)
    if n == 0:
        return []
    ends = np.cumsum(rows_per_slot)
    groups: list[tuple[int, int]] = []
    start, base = 0, 0
    while start < n:
        end = int(np.searchsorted(ends, base + target_rows, side="left")) + 1
        end = max(start + 1, min(end, n, start + PAGES_PER_CHUNK))
        groups.append((start, end))
        base = int(ends[end - 1])
        start = end
    return groups
