"""Block maps: per snapshot, the chunk versions it changed against its lineage parent.

An *entry* says, for one chunk of one snapshot: which version (object id + slot, and where the
object lies: pack, offset, length), its kind (zero, full or patch), its chain ``depth`` (patches
beneath it before a full version), the pages ``written`` since the lineage parent (the diff), and
the pages ``present`` (non-zero data) in the version. Entries are a numpy structured array sorted by
chunk; a snapshot's map is stored in segment rows of ``SEGMENT_CHUNKS`` chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import zstandard

from snapferry.errors import IntegrityError
from snapferry.settings import BITMAP_BYTES, SEGMENT_CHUNKS

ENTRY = np.dtype(
    [
        ("chunk", "<u8"),
        ("pack", "<i8"),
        ("offset", "<u8"),
        ("length", "<u4"),
        ("slot", "<u2"),
        ("kind", "u1"),
        ("depth", "u1"),
        ("oid", "u1", (32,)),
        ("written", "u1", (BITMAP_BYTES,)),
        ("present", "u1", (BITMAP_BYTES,)),
    ]
)
Entries = npt.NDArray[np.void]
MAX_DEPTH = 255


def empty(n: int = 0) -> Entries:
    """n zeroed entries (kind 0 = an all-zero chunk, no object)."""
    entries = np.zeros(n, dtype=ENTRY)
    entries["pack"] = -1
    return entries


SEGMENT_FORMAT = b"\x01"
"""Segment rows are a format byte, then the entries zstd-compressed: the bitmaps of scattered
writes are mostly zero bytes, so a segment shrinks several-fold and its commit writes less."""


_SEGMENT_ZSTD = zstandard.ZstdCompressor(level=-3)
"""A fast negative level: entries are mostly zero bytes, which any level shrinks well."""


def encode_segment(entries: Entries) -> bytes:
    """Bytes for one segment row."""
    raw = np.ascontiguousarray(entries).tobytes()
    return SEGMENT_FORMAT + _SEGMENT_ZSTD.compress(raw)


def decode_segment(blob: bytes) -> Entries:
    """Entries of one segment row. Raises IntegrityError if the row is damaged."""
    try:
        if blob[:1] != SEGMENT_FORMAT:
            raise ValueError("unknown format")
        raw = zstandard.ZstdDecompressor().decompress(blob[1:])
    except (ValueError, zstandard.ZstdError) as exc:
        raise IntegrityError(f"block-map segment is unreadable: {exc}") from None
    if len(raw) % ENTRY.itemsize:
        raise IntegrityError("block-map segment has a torn length")
    return np.frombuffer(raw, dtype=ENTRY).copy()


def by_segment(entries: Entries) -> dict[int, Entries]:
    """Split sorted entries into their segments."""
    if len(entries) == 0:
        return {}
    segs = (entries["chunk"] // SEGMENT_CHUNKS).astype(np.int64)
    cuts = np.flatnonzero(np.diff(segs)) + 1
    starts = np.concatenate(([0], cuts))
    return {int(segs[s]): part for s, part in zip(starts, np.split(entries, cuts), strict=True)}


def merge_sorted(parts: Iterable[Entries]) -> Entries:
    """Concatenate entry arrays and sort by chunk (chunks must not repeat across parts)."""
    arrays = [p for p in parts if len(p)]
    if not arrays:
        return empty()
    merged = np.concatenate(arrays)
    chunks = merged["chunk"]
    if len(chunks) < 2 or bool(np.all(chunks[1:] > chunks[:-1])):
        return merged  # parts given in order (a seal's batches): nothing to sort
    return merged[np.argsort(chunks, kind="stable")]


def overlay(base: Entries, top: Entries) -> Entries:
    """base with top's entries added or replacing base's entries of the same chunk."""
    keep = ~np.isin(base["chunk"], top["chunk"])
    return merge_sorted([base[keep], top])


@dataclass(frozen=True)
class NodeMap:
    """A snapshot's whole map, with a fast lookup by chunk."""

    entries: Entries

    @property
    def chunks(self) -> npt.NDArray[np.uint64]:
        chunks: npt.NDArray[np.uint64] = self.entries["chunk"]
        return chunks

    def find(self, chunk: int) -> int:
        """Index of chunk's entry, or -1."""
        chunks = self.chunks
        i = int(np.searchsorted(chunks, chunk))
        return i if i < len(chunks) and int(chunks[i]) == chunk else -1

    def find_many(self, wanted: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """For each wanted chunk, the index of its entry or -1."""
        chunks = self.chunks
        idx = np.searchsorted(chunks, wanted)
        idx = np.minimum(idx, max(len(chunks) - 1, 0))
        hit = (chunks[idx] == wanted) if len(chunks) else np.zeros(len(wanted), dtype=bool)
        return np.where(hit, idx, -1).astype(np.int64)
