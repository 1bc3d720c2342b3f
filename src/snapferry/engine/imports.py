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
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Row

from snapferry.codec import HEADER, HEADER_SIZE, ID_SIZE
from snapferry.engine import bitmaps, blockmap, bundles
from snapferry.engine import diff as diffs
from snapferry.engine.base import path_between
from snapferry.engine.checks import check_size
from snapferry.engine.delta import NO_FRAME, ChunkDelta, CopyPlan
from snapferry.engine.maps import Node, chain_depth
from snapferry.engine.models import SnapshotInfo
from snapferry.engine.objects import Location, PackWriter, location_of
from snapferry.engine.snapshots import SnapshotOps
from snapferry.engine.versions import ChunkBatch, submit_versions
from snapferry.errors import Conflict, IntegrityError, InvalidInput, NotFound, StoreError
from snapferry.ids import new_id
from snapferry.meta import catalog
from snapferry.settings import PAGE

SHIP_WHOLE = 0.9
"""A stored frame travels as it is when at least this share of its content is wanted."""

Guard = Callable[[Connection], bool]
"""Called inside an import's commit transaction: makes the caller's own change there and
returns False to abort the commit (the copy was cancelled or its lease lost)."""


class HeldFrameUnreadable(IntegrityError):
    """A frame the version index says this region holds is gone or corrupt: fetch it again."""

    code = "HeldFrameUnreadable"

    def __init__(self, oid: bytes) -> None:
        super().__init__(f"the local copy of frame {oid.hex()[:16]} is unreadable", frame=oid.hex())
        self.oid = oid


class ImportAborted(Conflict):
    """An import's commit found the target gone or its caller's guard refused; nothing changed."""

    code = "CopyAborted"


class ImportOps(SnapshotOps):
    """Planning copies of snapshots (source side) and importing them (target side)."""

    # --- source side ---------------------------------------------------------------------------
    def plan_copy(
        self, snapshot_id: str, candidates: Sequence[str], *, full: bool = False
    ) -> tuple[str | None, CopyPlan]:
        """The anchor (the first of ``candidates`` that is snapshot_id or one of its ancestors,
        hidden ones included; None for a full copy or when none is) and the plan from it to
        snapshot_id: the delta, and which chunks travel as stored frames. Metadata, and the
        header of each candidate frame."""
        with self.lock:
            self._ready(snapshot_id)
            lineage = self.maps.lineage(snapshot_id)
            anchor, delta = None, None
            if not full:
                ancestry = self.maps.ancestry(snapshot_id)
                for candidate in candidates:
                    path = path_between(ancestry, candidate)
                    if path is not None:
                        anchor, delta = candidate, diffs.delta(path, lineage)
                        break
            if delta is None:
                delta = diffs.allocated_delta(lineage)
            return anchor, self._with_frames(lineage, delta)

    def _with_frames(self, lineage: list[Node], delta: ChunkDelta) -> CopyPlan:
        """The plan of delta: a chunk travels as its stored frame when its newest version is a
        full one holding exactly the pages the delta sets, and the frame's other slots (if
        any) are mostly wanted too — so a frame never costs much more than the pages."""
        n = len(delta)
        newest = blockmap.empty(n)
        found = np.zeros(n, dtype=bool)
        for node in lineage:
            idx = node.map.find_many(delta.chunks)
            hit = ~found & (idx >= 0)
            newest[hit] = node.map.entries[idx[hit]]
            found |= hit
        whole = (
            found
            & (newest["kind"] == bundles.KIND_FULL)
            & np.all(newest["present"] == delta.changed, axis=1)
        )
        rows = np.flatnonzero(whole)
        if len(rows) == 0:
            return CopyPlan.pages_only(delta)
        oids = np.ascontiguousarray(newest["oid"][rows]).view(f"V{ID_SIZE}").ravel()
        uniq, first, inverse = np.unique(oids, return_index=True, return_inverse=True)
        wanted = np.bincount(
            inverse, weights=bitmaps.popcount(newest["present"][rows]) * PAGE, minlength=len(uniq)
        )
        frame = np.full(n, NO_FRAME, dtype=np.int64)
        kept_oids: list[npt.NDArray[np.uint8]] = []
        kept_lengths: list[int] = []
        for u in range(len(uniq)):
            entry = newest[rows[first[u]]]
            at = Location(b"", int(entry["pack"]), int(entry["offset"]), HEADER_SIZE)
            plaintext = int(HEADER.unpack_from(self.objects.header(at))[3])
            if wanted[u] < SHIP_WHOLE * plaintext:
                continue
            frame[rows[inverse == u]] = len(kept_oids)
            kept_oids.append(np.frombuffer(bytes(entry["oid"]), dtype=np.uint8))
            kept_lengths.append(int(entry["length"]))
        if not kept_oids:
            return CopyPlan.pages_only(delta)
        return CopyPlan(delta, frame, np.stack(kept_oids), np.array(kept_lengths, dtype=np.int64))

    def read_frames(self, snapshot_id: str, oids: Sequence[bytes]) -> list[bytes]:
        """The stored frames with these ids, as stored (unverified: the receiver checks them),
        wherever they lie now. Only frames the snapshot's lineage names are served."""
        with self.lock:
            self._ready(snapshot_id)
            lineage = self.maps.lineage(snapshot_id)
            entries = (
                blockmap.merge_sorted([])
                if not lineage
                else np.concatenate([node.map.entries for node in lineage])
            )
        known = np.ascontiguousarray(entries["oid"]).view(f"V{ID_SIZE}").ravel()
        out = []
        for oid in oids:
            hits = np.flatnonzero(known == np.frombuffer(oid, dtype=f"V{ID_SIZE}")[0])
            if len(hits) == 0:
                raise InvalidInput(f"object {oid.hex()[:16]} is not part of snapshot {snapshot_id}")
            out.append(self.objects.frame(location_of(entries[hits[0]])))
        return out

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
    def begin_import(
        self, size_bytes: int, *, family_id: str | None, full: bool, zone: str | None = None
    ) -> SnapshotInfo:
        """A new snapshot being imported: incremental in family_id, or full (self-contained, a
        family of its own). It reads as nothing until ``finish_import``. StorageFull when the
        region is down to its space reserve. ``zone``: its data kept in that zone alone; None:
        in every zone (what it reuses or builds on is made so by ``finish_import``)."""
        check_size(size_bytes)
        self.check_zone(zone)
        self.reserve.check()
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
                zone=zone,
            )
        return self.get_snapshot(sid)

    def _import_row(self, snapshot_id: str) -> Row[Any]:
        """The import's catalog row (no map), or ImportAborted if it is no longer importing."""
        with self.db.connect() as conn:
            row = catalog.snapshot(conn, snapshot_id)
        if row is None or row.state != "importing":
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported")
        return row

    def _importing(self, snapshot_id: str) -> Node:
        """The import's node with its map read back from the database (the checkpoint), or
        ImportAborted."""
        self.maps.invalidate(snapshot_id)
        try:
            node = self.maps.node(snapshot_id)
        except NotFound:
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported") from None
        if node.state != "importing":
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported")
        return node

    def set_import_base(
        self, snapshot_id: str, base_id: str | None, guard: Guard | None = None
    ) -> None:
        """Make base_id (a ready snapshot of the same family, or None) the lineage parent of an
        import that holds no data yet, in one transaction with ``guard`` (the caller saving
        its plan; ImportAborted, nothing changed, if it refuses). A base replaced is folded if
        it was deleted meanwhile."""
        with self.lock:
            node = self._importing(snapshot_id)
            if len(node.map.entries) and node.parent_id != base_id:
                raise InvalidInput(f"import {snapshot_id} already holds data on another base")
            if base_id is not None:
                base = self._ready(base_id)
                if base.family_id != node.family_id or node.self_contained:
                    raise InvalidInput(f"{base_id} cannot be the base of import {snapshot_id}")
            with self.db.begin() as conn:
                self._check_commit(conn, snapshot_id, guard or (lambda _: True))
                catalog.update_snapshot(conn, snapshot_id, parent_id=base_id)
            self.maps.invalidate(snapshot_id)
        if node.parent_id != base_id:
            self.collapse(node.parent_id)

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
        the import is gone or the guard refuses; its versions are then garbage. StorageFull
        (nothing stored) if the pages would eat into the space reserve."""
        self.reserve.check(pages.nbytes)
        row = self._import_row(snapshot_id)
        parent = [] if row.self_contained else self.maps.lineage(row.parent_id)
        has_base, depth = chain_depth(parent, delta.chunks)
        kinds = np.where(has_base, bundles.KIND_PATCH, bundles.KIND_FULL).astype(np.uint8)
        touched = delta.changed | delta.cleared
        rows, cols = bitmaps.sparse(touched)
        is_changed = bitmaps.unpack(delta.changed)[rows, cols]
        if int(is_changed.sum()) != len(pages):
            raise InvalidInput("the pages given do not match the delta")
        if is_changed.all():  # no page to clear: the pages are the batch as they are
            data = pages
        else:
            data = np.zeros((len(rows), PAGE), dtype=np.uint8)
            data[is_changed] = pages
        with self.writer(row.zone) as writer:
            batch = ChunkBatch(delta.chunks, kinds, rows, cols, data)
            entries = submit_versions(writer, batch)()
            entries["written"] = touched
            entries["depth"] = np.where(has_base, np.minimum(depth + 1, blockmap.MAX_DEPTH), 0)
            writer.finish()
            self._commit_staged(snapshot_id, entries, writer, guard)

    def referenced_frames(self, snapshot_ids: Sequence[str]) -> set[bytes]:
        """The ids of the frames the given snapshots read (their lineages), those that exist."""
        out: set[bytes] = set()
        seen: set[str] = set()
        for sid in snapshot_ids:
            try:
                lineage = self.maps.lineage(sid)
            except NotFound:
                continue
            for node in lineage:
                if node.id in seen:
                    continue
                seen.add(node.id)
                stored = node.map.entries[node.map.entries["kind"] != bundles.KIND_ZERO]
                raw = np.unique(np.ascontiguousarray(stored["oid"]), axis=0).tobytes()
                out.update(raw[i : i + ID_SIZE] for i in range(0, len(raw), ID_SIZE))
        return out

    def held_frames(self, oids: Sequence[bytes]) -> dict[bytes, Location]:
        """Where this region already holds frames with these ids (the version index): a copy
        never fetches those again."""
        with self.db.connect() as conn:
            found = catalog.held_versions(conn, oids)
        return {oid: Location(oid, *where) for oid, where in found.items()}

    def stage_frames(
        self,
        snapshot_id: str,
        delta: ChunkDelta,
        frames: Sequence[tuple[bytes, bytes | memoryview | None]],
        frame_of: Sequence[bytes],
        guard: Guard,
    ) -> None:
        """Store frames (``(id, frame)`` pairs, as the source stores them; a frame of None is
        one this region already holds, see ``held_frames``) holding the delta's chunks as full
        versions — verbatim, each verified against its id first — and commit the chunks'
        entries with ``guard``. ``frame_of`` names each chunk's frame, in delta order.
        IntegrityError (nothing committed) if a frame does not match its id, or does not hold
        exactly the pages the delta sets for a chunk; HeldFrameUnreadable if a held one is
        gone or corrupt (fetch it instead); StorageFull (nothing stored) if they would eat into
        the space reserve."""
        self.reserve.check(sum(len(frame) for _, frame in frames if frame is not None))
        zone = self._import_row(snapshot_id).zone
        held = self.held_frames([oid for oid, frame in frames if frame is None])

        def load(item: tuple[bytes, bytes | memoryview | None]) -> bundles.Bundle:
            oid, frame = item
            if frame is not None:
                return bundles.parse(self.codec.decode(frame, oid, what=f"frame {oid.hex()[:16]}"))
            try:
                return self.objects.bundle(held[oid])
            except (KeyError, IntegrityError, StoreError):  # StoreError: its zone is down
                raise HeldFrameUnreadable(oid) from None

        parsed = dict(zip([oid for oid, _ in frames], self.pool.map(load, frames), strict=True))
        slots = {
            oid: {
                int(chunk): slot
                for slot, chunk in enumerate(bundle.chunks.tolist())
                if int(bundle.kinds[slot]) == bundles.KIND_FULL
            }
            for oid, bundle in parsed.items()
        }
        if len(frame_of) != len(delta):
            raise InvalidInput("frame_of must name a frame for every chunk of the delta")
        entries = blockmap.empty(len(delta))
        entries["chunk"] = delta.chunks
        entries["kind"] = bundles.KIND_FULL
        entries["written"] = delta.changed | delta.cleared
        picked = []
        for i, (chunk, oid) in enumerate(zip(delta.chunks.tolist(), frame_of, strict=True)):
            slot = slots.get(oid, {}).get(int(chunk))
            if slot is None:
                raise IntegrityError(
                    f"frame {oid.hex()[:16]} holds no full version of chunk {chunk}"
                )
            entries["present"][i] = parsed[oid].present[slot]
            entries["slot"][i] = slot
            picked.append(oid)
        if not np.array_equal(entries["present"], delta.changed):
            raise IntegrityError("frames from the source do not hold the pages the copy sets")
        with self.writer(zone) as writer:
            fetched = [(oid, frame) for oid, frame in frames if frame is not None]
            stored = dict(
                zip(
                    [oid for oid, _ in fetched],
                    writer.write_frames([frame for _, frame in fetched]),
                    strict=True,
                )
            )
            for i, oid in enumerate(picked):
                loc = held[oid] if oid in held else stored[oid]
                entries["pack"][i], entries["offset"][i] = loc.pack, loc.offset
                entries["length"][i] = loc.length
                entries["oid"][i] = np.frombuffer(loc.oid, dtype=np.uint8)
            writer.finish()
            self._commit_staged(snapshot_id, entries, writer, guard)

    def _commit_staged(
        self, snapshot_id: str, entries: blockmap.Entries, writer: PackWriter, guard: Guard
    ) -> None:
        """Merge entries into the import's map, with the writer's packs made live (and indexed)
        and ``guard``. IntegrityError if a pack an entry names is gone (nothing committed)."""
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
                named = set(entries["pack"][entries["pack"] >= 0].tolist())
                if len(catalog.namable_packs(conn, named)) != len(named):
                    # gone, or dead (GC deletes those without the lock): fetch them instead
                    raise IntegrityError("a version the import names is no longer stored here")
                catalog.put_segments(conn, snapshot_id, blobs)
                writer.commit(conn)
            self.maps.invalidate(snapshot_id)

    def finish_import(self, snapshot_id: str, guard: Guard) -> SnapshotInfo:
        """Make the import ready, in one transaction with ``guard`` — a zone-redundant one once
        every pack it reads (reused frames and its base's included) is zone-redundant too."""
        if self._import_row(snapshot_id).zone is None:
            self.harden(self.maps.lineage(snapshot_id))
        with self.lock:
            row = self._import_row(snapshot_id)
            with self.db.begin() as conn:
                self._check_commit(conn, snapshot_id, guard)
                catalog.update_snapshot(conn, snapshot_id, state="ready")
            self.maps.invalidate(snapshot_id)
        self.collapse(row.parent_id)  # a base deleted meanwhile folds into the import now
        return self.get_snapshot(snapshot_id)

    @staticmethod
    def _check_commit(conn: Connection, snapshot_id: str, guard: Guard) -> None:
        row = catalog.snapshot(conn, snapshot_id)
        if row is None or row.state != "importing":
            raise ImportAborted(f"snapshot {snapshot_id} is no longer being imported")
        if not guard(conn):
            raise ImportAborted(f"the copy into {snapshot_id} was taken over or cancelled")
