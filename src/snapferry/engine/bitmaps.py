"""Page bitmaps and extents, vectorized with numpy.

A chunk's page bitmap is 1024 bits packed into 128 bytes (``numpy.packbits`` order). Functions
here take many chunks at once — ``(n, 128)`` packed or ``(n, 1024)`` boolean arrays — so no caller
loops over pages in Python.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from snapferry.settings import BITMAP_BYTES, PAGE, PAGES_PER_CHUNK

Packed = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]
Extents = list[tuple[int, int]]

EMPTY = bytes(BITMAP_BYTES)


def unpack(packed: Packed) -> Bools:
    """``(n, 128)`` packed bitmaps → ``(n, 1024)`` booleans."""
    return np.unpackbits(packed, axis=-1).astype(bool)


def pack(bools: Bools) -> Packed:
    """``(n, 1024)`` booleans → ``(n, 128)`` packed bitmaps."""
    return np.packbits(bools, axis=-1)


def sparse(packed: Packed) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row, page) of every set bit of ``(n, 128)`` packed bitmaps, sorted. Scans the packed bytes,
    then unpacks only the non-zero ones, so sparse bitmaps cost O(n·128 + set bits)."""
    flat = np.flatnonzero(packed.reshape(-1))
    bits = np.unpackbits(packed.reshape(-1)[flat][:, None], axis=1)
    sub_r, sub_b = np.nonzero(bits)
    at = flat[sub_r]
    return at // BITMAP_BYTES, (at % BITMAP_BYTES) * 8 + sub_b


def from_sparse(n: int, rows: npt.NDArray[np.int64], pages: npt.NDArray[np.int64]) -> Packed:
    """``(n, 128)`` packed bitmaps with the given (row, page) bits set. O(n·128 + bits)."""
    out = np.zeros(n * BITMAP_BYTES, dtype=np.uint8)
    bits = (np.uint8(0x80) >> (pages & 7).astype(np.uint8)).astype(np.uint8)
    np.bitwise_or.at(out, rows * BITMAP_BYTES + (pages >> 3), bits)
    return out.reshape(n, BITMAP_BYTES)


def is_set(packed: Packed, page: int) -> bool:
    """Whether page's bit is set in one packed bitmap."""
    return bool((int(packed[page >> 3]) >> (7 - (page & 7))) & 1)


def popcount(packed: Packed) -> npt.NDArray[np.int64]:
    """Set bits per bitmap, for ``(n, 128)`` packed bitmaps."""
    counts: npt.NDArray[np.int64] = np.bitwise_count(packed).sum(axis=-1, dtype=np.int64)
    return counts


def page_span(offset: int, length: int) -> tuple[int, int]:
    """First page and one-past-last page touched by ``[offset, offset+length)``."""
    return offset // PAGE, -(-(offset + length) // PAGE)


def mark_pages(first_page: int, end_page: int) -> dict[int, Bools]:
    """Per chunk, a boolean page mask of the pages in ``[first_page, end_page)``."""
    marks: dict[int, Bools] = {}
    page = first_page
    while page < end_page:
        chunk = page // PAGES_PER_CHUNK
        lo = page - chunk * PAGES_PER_CHUNK
        hi = min(PAGES_PER_CHUNK, end_page - chunk * PAGES_PER_CHUNK)
        mask = np.zeros(PAGES_PER_CHUNK, dtype=bool)
        mask[lo:hi] = True
        marks[chunk] = mask
        page = (chunk + 1) * PAGES_PER_CHUNK
    return marks


def run_arrays(
    pages: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sorted unique page indices → first pages and lengths of their runs of consecutive pages."""
    if pages.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(pages) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [pages.size]))
    return pages[starts], (ends - starts).astype(np.int64)


def runs(pages: npt.NDArray[np.int64]) -> Extents:
    """Sorted unique page indices → ``(first_page, count)`` runs of consecutive pages."""
    firsts, counts = run_arrays(pages)
    return list(zip(firsts.tolist(), counts.tolist(), strict=True))


def global_pages(chunks: npt.NDArray[np.uint64], bools: Bools) -> npt.NDArray[np.int64]:
    """Disk-wide page indices of the set bits of ``(n, 1024)`` masks for sorted chunk indices."""
    rows, cols = np.nonzero(bools)
    pages: npt.NDArray[np.int64] = chunks.astype(np.int64)[rows] * PAGES_PER_CHUNK + cols
    return pages


def to_byte_extents(pages: npt.NDArray[np.int64], size_bytes: int) -> Extents:
    """Sorted page indices → merged ``(offset, length)`` byte extents, clipped at size_bytes."""
    out: Extents = []
    for first, count in runs(pages):
        start = first * PAGE
        end = min((first + count) * PAGE, size_bytes)
        if end > start:
            out.append((start, end - start))
    return out
