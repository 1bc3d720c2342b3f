"""Exact diffs between snapshots of one family, from metadata alone.

``diff(a, b)`` lists the pages written on the lineage path between a and b (the union of the
``written`` bitmaps of the snapshots after the older one, up to and including the newer one),
split by what they hold in ``b``: non-zero pages are *changed*, zero pages are *cleared*. Applying
the changed pages of b and zeroing the cleared ones turns a's content into b's. It costs
O(chunks changed × lineage length), never O(disk size), and reads no data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from snapferry.engine import bitmaps
from snapferry.engine.delta import ChunkDelta
from snapferry.engine.maps import Node
from snapferry.engine.resolve import View, resolve_present
from snapferry.settings import PAGES_PER_CHUNK

Extents = list[tuple[int, int]]


@dataclass(frozen=True)
class Diff:
    """Sorted, merged byte extents ``(offset, length)``: changed (non-zero in the target) and
    cleared (zero in the target)."""

    changed: Extents
    cleared: Extents

    @property
    def changed_bytes(self) -> int:
        return sum(length for _, length in self.changed)

    def to_dict(self) -> dict[str, object]:
        return {
            "changed": [list(e) for e in self.changed],
            "cleared": [list(e) for e in self.cleared],
            "changedBytes": self.changed_bytes,
        }


def written_between(path: list[Node]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Chunks and ``(n, 1024)`` masks of pages written by the given snapshots, combined."""
    parts = [node.map.entries for node in path if len(node.map.entries)]
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros((0, PAGES_PER_CHUNK), dtype=bool)
    entries = np.concatenate(parts)
    order = np.argsort(entries["chunk"], kind="stable")
    chunks = entries["chunk"][order]
    written = entries["written"][order]
    starts = np.flatnonzero(np.concatenate(([True], chunks[1:] != chunks[:-1])))
    combined = np.bitwise_or.reduceat(written, starts, axis=0)
    keep = combined.any(axis=1)
    return chunks[starts][keep], bitmaps.unpack(combined[keep])


def diff(path: list[Node], target_lineage: list[Node], size_bytes: int) -> Diff:
    """Pages written by the snapshots in ``path``, classified by their content in the target."""
    chunks, written = written_between(path)
    present = resolve_present(target_lineage, chunks)
    changed = bitmaps.global_pages(chunks, written & present)
    cleared = bitmaps.global_pages(chunks, written & ~present)
    return Diff(
        bitmaps.to_byte_extents(changed, size_bytes), bitmaps.to_byte_extents(cleared, size_bytes)
    )


def delta(path: list[Node], target_lineage: list[Node]) -> ChunkDelta:
    """The pages written by the snapshots in ``path``, split as in ``diff``, as a chunk delta."""
    chunks, written = written_between(path)
    present = resolve_present(target_lineage, chunks)
    return ChunkDelta(chunks, bitmaps.pack(written & present), bitmaps.pack(written & ~present))


def allocated_delta(lineage: list[Node]) -> ChunkDelta:
    """Every non-zero page of the snapshot whose lineage is given, as a chunk delta."""
    chunks, present = _lineage_present(lineage)
    keep = present.any(axis=1)
    changed = bitmaps.pack(present[keep])
    return ChunkDelta(chunks[keep], changed, np.zeros_like(changed))


def allocated(lineage: list[Node], size_bytes: int) -> Extents:
    """Byte extents of the non-zero pages of the snapshot whose lineage is given."""
    chunks, present = _lineage_present(lineage)
    return bitmaps.to_byte_extents(bitmaps.global_pages(chunks, present), size_bytes)


def allocated_view(view: View) -> Extents:
    """Byte extents of a view's pages that may hold data: the non-zero pages of its lineage and
    every page its head generations hold (written, zero or not). Pages outside are zero."""
    pages = [bitmaps.global_pages(*_lineage_present(view.lineage))]
    for head in view.heads:
        chunks, packed = head.dirty_arrays()
        if len(chunks):
            pages.append(bitmaps.global_pages(chunks, bitmaps.unpack(packed)))
    merged = np.unique(np.concatenate(pages)) if len(pages) > 1 else pages[0]
    return bitmaps.to_byte_extents(merged, view.size_bytes)


def _lineage_present(
    lineage: list[Node],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    if not lineage:
        return np.zeros(0, dtype=np.uint64), np.zeros((0, PAGES_PER_CHUNK), dtype=bool)
    chunks = np.unique(np.concatenate([n.map.chunks for n in lineage])).astype(np.uint64)
    return chunks, resolve_present(lineage, chunks)
