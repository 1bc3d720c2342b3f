"""Sealing: turning a frozen head generation into a snapshot's block-map delta.

Incremental: each chunk the head touched becomes a *patch* version holding just the touched pages
(or a *full* version when no older snapshot has the chunk), bundled so the cost follows the pages
written, not the chunks touched. Full: every allocated chunk gets a full version; chunks whose
newest version already is a full one share it instead of being rewritten. Copy: a full
snapshot's map, taken as another snapshot's own, shares every version and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine.head import Head
from snapferry.engine.maps import Node, chain_depth
from snapferry.engine.objects import PackWriter
from snapferry.engine.resolve import ChunkReader, View, allocated_chunks
from snapferry.engine.versions import ChunkBatch, submit_versions, write_full
from snapferry.settings import PAGES_PER_CHUNK

BATCH_PAGES = 4096
"""Pages gathered per step (16 MiB); with one step in flight this bounds a seal's memory."""


def _batches(
    chunks: npt.NDArray[np.uint64], packed: npt.NDArray[np.uint8]
) -> Iterator[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]]:
    counts = np.cumsum(bitmaps.popcount(packed))
    start = 0
    while start < len(chunks):
        base = int(counts[start - 1]) if start else 0
        end = int(np.searchsorted(counts, base + BATCH_PAGES, side="right"))
        end = max(end, start + 1)
        yield chunks[start:end], packed[start:end]
        start = end


def seal_incremental(writer: PackWriter, head: Head, parent: list[Node]) -> blockmap.Entries:
    """The map delta of a snapshot whose pages are head's and whose lineage parent is ``parent``.

    Pipelined on one thread: while the codec pool hashes and compresses one batch, the next
    batch's pages are read from the overlay; then the first batch is stored."""
    chunks, packed = head.dirty_arrays()
    parts: list[blockmap.Entries] = []
    pending: Callable[[], blockmap.Entries] | None = None
    for part_chunks, part_packed in _batches(chunks, packed):
        has_base, depth = chain_depth(parent, part_chunks)
        kinds = np.where(has_base, bundles.KIND_PATCH, bundles.KIND_FULL).astype(np.uint8)
        rows, cols = bitmaps.sparse(part_packed)
        pages = head.overlay.gather(part_chunks.astype(np.int64)[rows] * PAGES_PER_CHUNK + cols)
        finish = submit_versions(writer, ChunkBatch(part_chunks, kinds, rows, cols, pages))
        if pending is not None:
            parts.append(pending())
        depths = np.where(has_base, np.minimum(depth + 1, blockmap.MAX_DEPTH), 0)
        pending = _with_map_fields(finish, part_packed, depths)
    if pending is not None:
        parts.append(pending())
    return blockmap.merge_sorted(parts)


def _with_map_fields(
    finish: Callable[[], blockmap.Entries],
    written: npt.NDArray[np.uint8],
    depths: npt.NDArray[np.int64],
) -> Callable[[], blockmap.Entries]:
    def done() -> blockmap.Entries:
        entries = finish()
        entries["written"] = written
        entries["depth"] = depths
        return entries

    return done


def seal_full(writer: PackWriter, reader: ChunkReader, head: Head, view: View) -> blockmap.Entries:
    """The map of a self-contained snapshot of ``view`` (whose newest head is ``head``)."""
    parts = []
    for chunk in allocated_chunks(view).tolist():
        written = head.bits(chunk)
        if written is None:
            reused = _reusable_full(view.lineage, chunk)
            if reused is not None:
                parts.append(reused)
                continue
        entry = write_full(writer, chunk, reader.materialize(view, chunk))
        if written is not None:
            entry["written"] = written
        if entry["kind"][0] != bundles.KIND_ZERO or written is not None:
            parts.append(entry)
    return blockmap.merge_sorted(parts)


def _reusable_full(lineage: list[Node], chunk: int) -> blockmap.Entries | None:
    """A copy of the chunk's newest entry if it is a full (or zero) version, with no pages written."""
    for node in lineage:
        i = node.map.find(chunk)
        if i < 0:
            continue
        entry = node.map.entries[i : i + 1].copy()
        if int(entry["kind"][0]) == bundles.KIND_PATCH:
            return None
        entry["written"] = 0
        entry["depth"] = 0
        if int(entry["kind"][0]) == bundles.KIND_ZERO:
            return blockmap.empty(0)
        return entry
    return blockmap.empty(0)


def copy_full_map(source: Node) -> blockmap.Entries:
    """The map of a new, parentless snapshot reading exactly as the self-contained ``source``.

    Versions are content-addressed and never change, so the copy names the very versions the
    source names: a self-contained snapshot's map already resolves every chunk on its own (its
    lineage is itself), and the copy's lineage is itself too, so every chunk reads the same.
    Zero entries are dropped (a parentless map without the chunk reads zeros as well) and
    ``written`` becomes ``present``: with no parent, the pages written are the non-zero ones."""
    assert source.self_contained, source.id
    entries = source.map.entries
    copied: blockmap.Entries = entries[entries["kind"] != bundles.KIND_ZERO].copy()
    copied["written"] = copied["present"]
    return copied
