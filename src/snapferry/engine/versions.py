"""Turning chunk contents into stored chunk versions (block-map entries), in bulk.

Seal, fold, compaction and full snapshots all end the same way: a batch of chunks with, for each,
a kind and the pages it sets. ``write_versions`` drops all-zero pages, bundles the versions, has the
``PackWriter`` encode and store them, and returns their entries with locations filled in. Callers
set ``written`` and ``depth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine.objects import PackWriter
from snapferry.settings import PAGE, PAGES_PER_CHUNK


@dataclass
class ChunkBatch:
    """Chunk versions to store. ``touched`` marks the pages each version defines (for a full
    version: every page); ``pages`` holds the touched pages' content, row by row in order."""

    chunks: npt.NDArray[np.uint64]
    kinds: npt.NDArray[np.uint8]
    touched: npt.NDArray[np.bool_]
    pages: npt.NDArray[np.uint8]


def nonzero_rows(pages: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which rows of a ``(k, 4096)`` page array hold any non-zero byte."""
    if len(pages) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(pages.view(np.uint64).any(axis=1))


def write_versions(writer: PackWriter, batch: ChunkBatch) -> blockmap.Entries:
    """Store a batch; its entries (sorted as given). A full version with no data becomes kind 0."""
    n = len(batch.chunks)
    rows, cols = np.nonzero(batch.touched)
    keep = nonzero_rows(batch.pages)
    present = np.zeros((n, PAGES_PER_CHUNK), dtype=bool)
    present[rows[keep], cols[keep]] = True
    zeroed = batch.touched & ~present
    kinds = batch.kinds.copy()
    kinds[(kinds == bundles.KIND_FULL) & ~present.any(axis=1)] = bundles.KIND_ZERO
    zeroed[kinds != bundles.KIND_PATCH] = False
    entries = blockmap.empty(n)
    entries["chunk"] = batch.chunks
    entries["kind"] = kinds
    entries["present"] = bitmaps.pack(present)
    data = batch.pages[keep]
    data_rows = np.bincount(rows[keep], minlength=n).astype(np.int64)
    stored = np.flatnonzero(kinds != bundles.KIND_ZERO)
    if len(stored) == 0:
        return entries
    # rows of data belonging to a stored slot (zero-kind slots own no data by construction)
    first = np.concatenate(([0], np.cumsum(data_rows)[:-1]))
    groups = bundles.split_points(data_rows[stored], bundles.BUNDLE_TARGET // PAGE)
    packed_present = bitmaps.pack(present)
    packed_zeroed = bitmaps.pack(zeroed)
    contents = []
    for lo, hi in groups:
        slots = stored[lo:hi]
        start = int(first[slots[0]])
        end = int(first[slots[-1]] + data_rows[slots[-1]])
        contents.append(
            bundles.build(
                batch.chunks[slots],
                kinds[slots],
                packed_present[slots],
                packed_zeroed[slots],
                data[start:end],
            )
        )
    locations = writer.write(contents)
    for (lo, hi), loc in zip(groups, locations, strict=True):
        slots = stored[lo:hi]
        entries["pack"][slots] = loc.pack
        entries["offset"][slots] = loc.offset
        entries["length"][slots] = loc.length
        entries["oid"][slots] = np.frombuffer(loc.oid, dtype=np.uint8)
        entries["slot"][slots] = np.arange(hi - lo, dtype=np.uint16)
    return entries
