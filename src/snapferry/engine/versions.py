"""Turning chunk contents into stored chunk versions (block-map entries), in bulk.

Seal, fold, compaction and full snapshots all end the same way: a batch of chunks with, for each,
a kind and the pages it sets. ``write_versions`` drops all-zero pages, bundles the versions, has the
``PackWriter`` encode and store them, and returns their entries with locations filled in. Callers
set ``written`` and ``depth``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine.objects import PackWriter
from snapferry.settings import PAGE, PAGES_PER_CHUNK


@dataclass
class ChunkBatch:
    """Chunk versions to store, sparse: the pages each version defines are given as (row, page)
    pairs sorted by row then page, and ``pages`` holds their content in the same order. For a
    full version every page must be listed (pages not listed would read as zero)."""

    chunks: npt.NDArray[np.uint64]
    kinds: npt.NDArray[np.uint8]
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    pages: npt.NDArray[np.uint8]

    @classmethod
    def dense(
        cls,
        chunks: npt.NDArray[np.uint64],
        kinds: npt.NDArray[np.uint8],
        touched: npt.NDArray[np.bool_],
        pages: npt.NDArray[np.uint8],
    ) -> ChunkBatch:
        """A batch from ``(n, 1024)`` masks of touched pages (for a few chunks at a time)."""
        rows, cols = np.nonzero(touched)
        return cls(chunks, kinds, rows.astype(np.int64), cols.astype(np.int64), pages)


def nonzero_rows(pages: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which rows of a ``(k, 4096)`` page array hold any non-zero byte."""
    if len(pages) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(pages.view(np.uint64).any(axis=1))


def write_versions(writer: PackWriter, batch: ChunkBatch) -> blockmap.Entries:
    """Store a batch; its entries (sorted as given). A full version with no data becomes kind 0."""
    return submit_versions(writer, batch)()


def submit_versions(writer: PackWriter, batch: ChunkBatch) -> Callable[[], blockmap.Entries]:
    """Bundle a batch and start encoding it; the returned call waits, stores the bundles and
    gives the entries. Finish batches in the order they were submitted."""
    n = len(batch.chunks)
    keep = nonzero_rows(batch.pages)
    data_rows = np.bincount(batch.rows[keep], minlength=n).astype(np.int64)
    kinds = batch.kinds.copy()
    kinds[(kinds == bundles.KIND_FULL) & (data_rows == 0)] = bundles.KIND_ZERO
    present = bitmaps.from_sparse(n, batch.rows[keep], batch.cols[keep])
    is_patch = kinds[batch.rows] == bundles.KIND_PATCH
    cleared = ~keep & is_patch
    zeroed = bitmaps.from_sparse(n, batch.rows[cleared], batch.cols[cleared])
    entries = blockmap.empty(n)
    entries["chunk"] = batch.chunks
    entries["kind"] = kinds
    entries["present"] = present
    stored = np.flatnonzero(kinds != bundles.KIND_ZERO)
    data = batch.pages[keep] if not keep.all() else batch.pages
    # rows of data belonging to a stored slot (zero-kind slots own no data by construction)
    first = np.concatenate(([0], np.cumsum(data_rows)[:-1]))
    groups = bundles.split_points(data_rows[stored], bundles.BUNDLE_TARGET // PAGE)
    contents = []
    for lo, hi in groups:
        slots = stored[lo:hi]
        start = int(first[slots[0]])
        end = int(first[slots[-1]] + data_rows[slots[-1]])
        contents.append(
            bundles.build(
                batch.chunks[slots], kinds[slots], present[slots], zeroed[slots], data[start:end]
            )
        )
    stored_at = writer.submit(contents)

    def finish() -> blockmap.Entries:
        for (lo, hi), loc in zip(groups, stored_at(), strict=True):
            slots = stored[lo:hi]
            entries["pack"][slots] = loc.pack
            entries["offset"][slots] = loc.offset
            entries["length"][slots] = loc.length
            entries["oid"][slots] = np.frombuffer(loc.oid, dtype=np.uint8)
            entries["slot"][slots] = np.arange(hi - lo, dtype=np.uint16)
        return entries

    return finish


def write_full(writer: PackWriter, chunk: int, data: npt.NDArray[np.uint8]) -> blockmap.Entries:
    """Store one chunk's whole content (``(1024, 4096)``) as a full version; its one entry (kind
    zero if the chunk is all zeros). Callers set ``written``."""
    batch = ChunkBatch.dense(
        np.array([chunk], dtype=np.uint64),
        np.array([bundles.KIND_FULL], dtype=np.uint8),
        np.ones((1, PAGES_PER_CHUNK), dtype=bool),
        data,
    )
    return write_versions(writer, batch)
