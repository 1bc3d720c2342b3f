"""Copies between regions, the engine's half: planning on the source, importing on the target.

Source: ``plan_copy`` picks the *anchor* — the newest of the snapshots the target already holds
copies of that is an ancestor of (or is) the snapshot being copied — and returns the exact
chunk delta between them (every non-zero page when there is none); ``read_pages`` hands out the
changed pages' content. Target: ``begin_import`` makes the target snapshot in state
``importing`` (invisible to reads), ``set_import_base`` puts it on the copy of the anchor,
``stage_import`` stores a piece of the delta as patch versions over that base and commits their
map entries in one transaction with the caller's checkpoint, and ``finish_import`` makes it
``ready`` in one transaction with the caller's completion. The snapshot's own map is the copy's
checkpoint: what it holds is never fetched again, and GC keeps it (it is referenced) until the
snapshot is deleted, which makes a half-imported snapshot's data garbage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine import diff as diffs
from snapferry.engine.base import path_between
from snapferry.engine.checks import check_size
from snapferry.engine.delta import ChunkDelta
from snapferry.engine.maps import Node, chain_depth
from snapferry.engine.models import SnapshotInfo
from snapferry.engine.snapshots import SnapshotOps
from snapferry.engine.versions import ChunkBatch, submit_versions
from snapferry.errors import Conflict, InvalidInput, NotFound
from snapferry.ids import new_id
from snapferry.meta import catalog
from snapferry.settings import PAGE

Guard = Callable[[Connection], bool]
"""Called inside an import's commit transaction: makes the caller's own change there and
returns False to abort the commit (the copy was cancelled or its lease lost)."""


class ImportAborted(Conflict):
    """An import's commit found the target gone or its caller's guard refused; nothing changed."""

    code = "CopyAborted"


class ImportOps(SnapshotOps):
    """Planning copies of snapshots (source side) and importing them (target side)."""

    # --- source side ---------------------------------------------------------------------------
    def plan_copy(
        self, snapshot_id: str, candidates: Sequence[str], *, full: bool = False
    ) -> tuple[str | None, ChunkDelta]:
        """The anchor (the first of ``candidates`` that is snapshot_id or one of its ancestors,
        hidden ones included; None for a full copy or when none is) and the delta from it to
        snapshot_id. Metadata only."""
        with self.lock:
            self._ready(snapshot_id)
            lineage = self.maps.lineage(snapshot_id)
            if not full:
                ancestry = self.maps.ancestry(snapshot_id)
                for candidate in candidates:
                    path = path_between(ancestry, candidate)
                    if path is not None:
                        return candidate, diffs.delta(path, lineage)
            return None, diffs.allocated_delta(lineage)

    def read_pages(
        self, snapshot_id: str, chunks: npt.NDArray[np.uint64], changed: bitmaps.Packed
    ) -> npt.NDArray[np.uint8]:
        """The content of the given pages, ``(k, 4096)``, chunk by chunk and page by page in
        order, reading only the versions that hold them. Every version read is verified."""
        view = self.snapshot_view(snapshot_id)
        masks = bitmaps.unpack(changed)
        counts = masks.sum(axis=1)
        out = np.empty((int(counts.sum()), PAGE), dtype=np.uint8)
        pos = 0
        for i, chunk in enumerate(chunks.tolist()):
            n = int(counts[i])
            if n:
                out[pos : pos + n] = self.chunks.gather(view, chunk, masks[i])
                pos += n
        return out

    # --- target side ---------------------------------------------------------------------------
    def begin_import(self, size_bytes: int, *, family_id: str | None, full: bool) -> SnapshotInfo:
        """A new snapshot being imported: incremental in family_id, or full (self-contained, a
        family of its own). It reads as nothing until ``finish_import``."""
        check_size(size_bytes)
        sid = new_id()
        with self.lock, self.db.begin() as conn:
            catalog.insert_snapshot(
                conn,
                id=sid,
                family_id=new_id() if full or family_id is None else family_id,
                disk_id=None,
                parent_id=None,
                seq=catalog.next_seq(conn),
                size_bytes=size_bytes,
                incremental=not full,
                self_contained=full,
                state="importing",
                frozen_gen=None,
                created_at=self.clock(),
            )
        return self.get_snapshot(sid)

    def _importing(self, snapshot_id: str) -> Node:
        self.maps.invalidate(snapshot_id)
        try:
            node = self.maps.node(snapshot_id)
        except NotFound:
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported") from None
        if node.state != "importing":
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported")
        return node

    def set_import_base(self, snapshot_id: str, base_id: str | None) -> None:
        """Make base_id (a ready snapshot of the same family, or None) the lineage parent of an
        import that holds no data yet."""
        with self.lock:
            node = self._importing(snapshot_id)
            if node.parent_id == base_id:
                return
            if len(node.map.entries):
                raise InvalidInput(f"import {snapshot_id} already holds data on another base")
            if base_id is not None:
                base = self._ready(base_id)
                if base.family_id != node.family_id or node.self_contained:
                    raise InvalidInput(f"{base_id} cannot be the base of import {snapshot_id}")
            with self.db.begin() as conn:
                catalog.update_snapshot(conn, snapshot_id, parent_id=base_id)
            self.maps.invalidate(snapshot_id)

    def staged_chunks(self, snapshot_id: str) -> npt.NDArray[np.uint64]:
        """Chunks the import already holds (read back from the database)."""
        with self.lock:
            return self._importing(snapshot_id).map.chunks.copy()

    def stage_import(
        self,
        snapshot_id: str,
        delta: ChunkDelta,
        pages: npt.NDArray[np.uint8],
        guard: Guard,
    ) -> None:
        """Store a piece of the import's delta (``pages``: the changed pages' content in order)
        and commit its map entries with ``guard``. Raises ImportAborted (nothing committed) if
        the import is gone or the guard refuses; its versions are then garbage."""
        node = self._importing(snapshot_id)
        parent = [] if node.self_contained else self.maps.lineage(node.parent_id)
        has_base, depth = chain_depth(parent, delta.chunks)
        kinds = np.where(has_base, bundles.KIND_PATCH, bundles.KIND_FULL).astype(np.uint8)
        touched = delta.changed | delta.cleared
        rows, cols = bitmaps.sparse(touched)
        is_changed = bitmaps.unpack(delta.changed)[rows, cols]
        if int(is_changed.sum()) != len(pages):
            raise InvalidInput("the pages given do not match the delta")
        data = np.zeros((len(rows), PAGE), dtype=np.uint8)
        data[is_changed] = pages
        with self.writer() as writer:
            batch = ChunkBatch(delta.chunks, kinds, rows, cols, data)
            entries = submit_versions(writer, batch)()
            entries["written"] = touched
            entries["depth"] = np.where(has_base, np.minimum(depth + 1, blockmap.MAX_DEPTH), 0)
            sizes = writer.finish()
            with self.lock:
                with self.db.begin() as conn:
                    self._check_commit(conn, snapshot_id, guard)
                    parts = blockmap.by_segment(entries)
                    held = catalog.segments_in(conn, snapshot_id, parts)
                    blobs = {}
                    for seg, part in parts.items():
                        old = held.get(seg)
                        merged = (
                            part
                            if old is None
                            else blockmap.overlay(blockmap.decode_segment(old), part)
                        )
                        blobs[seg] = blockmap.encode_segment(merged)
                    catalog.put_segments(conn, snapshot_id, blobs)
                    catalog.mark_packs_live(conn, sizes)
                self.maps.invalidate(snapshot_id)

    def finish_import(self, snapshot_id: str, guard: Guard) -> SnapshotInfo:
        """Make the import ready, in one transaction with ``guard``."""
        with self.lock:
            node = self._importing(snapshot_id)
            with self.db.begin() as conn:
                self._check_commit(conn, snapshot_id, guard)
                catalog.update_snapshot(conn, snapshot_id, state="ready")
            self.maps.invalidate(snapshot_id)
        self.collapse(node.parent_id)  # a base deleted meanwhile folds into the import now
        return self.get_snapshot(snapshot_id)

    @staticmethod
    def _check_commit(conn: Connection, snapshot_id: str, guard: Guard) -> None:
        row = catalog.snapshot(conn, snapshot_id)
        if row is None or row.state != "importing":
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported")
        if not guard(conn):
            raise ImportAborted(f"the copy into {snapshot_id} was taken over or cancelled")
