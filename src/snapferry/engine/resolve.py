"""Reading: what a disk or snapshot holds, chunk by chunk, from its layers.

A *view* stacks, newest first, the head generations a disk still holds in overlays and then the
lineage of committed snapshots. A chunk is materialized by walking the layers until every page is
resolved or a full version ends the walk; pages nobody defines are zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from snapferry.engine import bitmaps, bundles
from snapferry.engine.head import Head
from snapferry.engine.maps import Node
from snapferry.engine.objects import ObjectReader, location_of
from snapferry.errors import IntegrityError
from snapferry.settings import CHUNK, PAGE, PAGES_PER_CHUNK

ZEROS = memoryview(bytes(CHUNK))
"""A chunk of zeros, shared by every read of a chunk no layer defines."""


def _blank() -> npt.NDArray[np.uint8]:
    return np.zeros((PAGES_PER_CHUNK, PAGE), dtype=np.uint8)


@dataclass(frozen=True)
class View:
    """The layers of one disk or snapshot at one moment. ``label`` names it in errors."""

    label: str
    size_bytes: int
    lineage: list[Node]
    heads: list[Head] = field(default_factory=list)
    snapshot_id: str | None = None


def allocated_chunks(view: View, lo: int = 0, hi: int | None = None) -> npt.NDArray[np.uint64]:
    """Sorted indices of the chunks in ``[lo, hi)`` that any layer of the view defines (the
    others are certainly zero)."""
    parts = [h.chunk_index() for h in view.heads] + [node.map.chunks for node in view.lineage]
    if hi is not None or lo:
        top = np.iinfo(np.uint64).max if hi is None else hi
        parts = [p[np.searchsorted(p, lo) : np.searchsorted(p, top)] for p in parts]
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate(parts)).astype(np.uint64)


class ChunkReader:
    """Materializes chunks of views; verifies every object it reads."""

    def __init__(self, objects: ObjectReader) -> None:
        self.objects = objects

    def _versions(self, view: View, chunk: int) -> Iterator[tuple[int, bundles.Bundle, int]]:
        """The stored versions of chunk in the view's lineage, newest first, until one of zeros:
        (kind, verified bundle, slot), each read only when asked for. IntegrityError names the
        view and the chunk's offset if a version is missing or corrupt."""
        for node in view.lineage:
            i = node.map.find(chunk)
            if i < 0:
                continue
            entry = node.map.entries[i]
            kind = int(entry["kind"])
            if kind == bundles.KIND_ZERO:
                return
            try:
                bundle = self.objects.bundle(location_of(entry))
            except IntegrityError as exc:
                raise IntegrityError(
                    f"{view.label}: data at offset {chunk * CHUNK} is unreadable: {exc.message}",
                    offset=chunk * CHUNK,
                    snapshot=view.snapshot_id,
                ) from None
            yield kind, bundle, int(entry["slot"])

    def materialize(self, view: View, chunk: int) -> npt.NDArray[np.uint8]:
        """Chunk ``chunk`` of the view as a ``(1024, 4096)`` array, possibly read-only (callers
        only read it). IntegrityError names the view and the chunk's offset if a version it needs
        is missing or corrupt."""
        out: npt.NDArray[np.uint8] | None = None  # made when pages must be merged into it
        resolved = np.zeros(PAGES_PER_CHUNK, dtype=bool)
        for head in view.heads:
            mask = head.mask(chunk)
            if mask is None:
                continue
            new = mask & ~resolved
            if new.any():
                pages = chunk * PAGES_PER_CHUNK + np.flatnonzero(new).astype(np.int64)
                out = _blank() if out is None else out
                out[new] = head.overlay.gather(pages)
            resolved |= mask
            if resolved.all():
                return _blank() if out is None else out
        for kind, bundle, slot in self._versions(view, chunk):
            present, data = bundle.slot_pages(slot)
            if len(data) == PAGES_PER_CHUNK and not resolved.any():
                return data  # a whole chunk, nothing above it: the (read-only) version itself
            take = present & ~resolved
            if take.any():
                rank = np.cumsum(present) - 1
                out = _blank() if out is None else out
                out[take] = data[rank[take]]
            if kind == bundles.KIND_FULL:
                break
            resolved |= present | bitmaps.unpack(bundle.zeroed[slot])
            if resolved.all():
                break
        return _blank() if out is None else out

    def gather(
        self, view: View, chunk: int, wanted: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.uint8]:
        """The ``wanted`` pages (a 1024-mask) of a snapshot view's chunk, ``(k, 4096)`` in page
        order, reading versions newest first only until every wanted page is resolved: a few
        pages changed since an older snapshot come from the small patches above it, never from
        the whole chunk beneath (``materialize`` resolves all 1024 pages)."""
        rank = np.cumsum(wanted) - 1
        out = np.zeros((int(rank[-1]) + 1 if len(rank) else 0, PAGE), dtype=np.uint8)
        need = wanted.copy()
        for kind, bundle, slot in self._versions(view, chunk):
            present, data = bundle.slot_pages(slot)
            take = present & need
            if take.any():
                out[rank[take]] = data[(np.cumsum(present) - 1)[take]]
            if kind == bundles.KIND_FULL:
                break
            need &= ~(present | bitmaps.unpack(bundle.zeroed[slot]))
            if not need.any():
                break
        return out

    def materialize_current(
        self, view: View, chunk: int, refresh: Callable[[], View] | None
    ) -> tuple[npt.NDArray[np.uint8], View]:
        """``materialize``, redone from ``refresh()`` while a head generation of the view was
        retired during the read (its overlay may have been discarded under it, reading zeros);
        returns the chunk and the view it came from."""
        while True:
            data = self.materialize(view, chunk)
            if refresh is None or not any(head.retired for head in view.heads):
                return data, view
            view = refresh()

    def iter_range(
        self,
        view: View,
        offset: int,
        length: int,
        refresh: Callable[[], View] | None = None,
    ) -> Iterator[memoryview]:
        """The bytes of ``[offset, offset+length)``, one read-only piece per chunk touched
        (views of cached versions where possible: no copy). A disk's view can go stale while
        the pieces are read (a snapshot seals its head generation and discards the overlay):
        ``refresh`` then gives a current view and the chunk is read again from it."""
        end = offset + length
        allocated = allocated_chunks(view, offset // CHUNK, -(-end // CHUNK))
        pos = offset
        while pos < end:
            chunk = pos // CHUNK
            stop = min(end, (chunk + 1) * CHUNK)
            lo = pos - chunk * CHUNK
            i = int(np.searchsorted(allocated, chunk))
            if i < len(allocated) and int(allocated[i]) == chunk:
                data, current = self.materialize_current(view, chunk, refresh)
                if current is not view:  # a newer view may define chunks the old one did not
                    view = current
                    allocated = allocated_chunks(view, chunk, -(-end // CHUNK))
                yield data.reshape(-1)[lo : lo + (stop - pos)].data.toreadonly()
            else:
                yield ZEROS[: stop - pos]
            pos = stop


def resolve_present(lineage: list[Node], chunks: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Metadata only: for each chunk, the ``(n, 1024)`` mask of pages holding non-zero data in the
    snapshot whose lineage is given."""
    n = len(chunks)
    alloc = np.zeros((n, PAGES_PER_CHUNK), dtype=bool)
    resolved = np.zeros((n, PAGES_PER_CHUNK), dtype=bool)
    open_ = np.ones(n, dtype=bool)
    for node in lineage:
        if not open_.any():
            break
        idx = node.map.find_many(chunks)
        hit = np.flatnonzero(open_ & (idx >= 0))
        if len(hit) == 0:
            continue
        found = node.map.entries[idx[hit]]
        present = bitmaps.unpack(found["present"])
        alloc[hit] |= present & ~resolved[hit]
        patch = found["kind"] == bundles.KIND_PATCH
        resolved[hit[patch]] |= bitmaps.unpack(found["written"][patch])
        open_[hit[~patch]] = False
    return alloc
