"""Snapshot operations: taking (freeze, then seal), reading, deleting (fold), restoring, diffing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from snapferry.engine import diff as diffs
from snapferry.engine import seal
from snapferry.engine.base import EngineBase, path_between, segment_blobs
from snapferry.engine.blockmap import NodeMap
from snapferry.engine.checks import check_size
from snapferry.engine.fold import fold_into
from snapferry.engine.head import Head, Overlay, head_root
from snapferry.engine.maps import Node
from snapferry.engine.models import DiskInfo, SnapshotInfo
from snapferry.engine.resolve import View
from snapferry.errors import InvalidInput, NotFound
from snapferry.ids import new_id
from snapferry.meta import catalog


class SnapshotOps(EngineBase):
    """Snapshots: freeze and seal, read, delete (fold), restore, diff."""

    # --- snapshots -----------------------------------------------------------------------------
    def create_snapshot(
        self, disk_id: str, *, incremental: bool = True, zone: str | None = None
    ) -> SnapshotInfo:
        """Snapshot a disk as it is when the call starts. Incremental snapshots store only the
        pages written since the previous one; full ones (``incremental=False``) are
        self-contained. ``zone``: keep its data in that zone alone (locally redundant); None:
        in every zone (zone-redundant, where the region has zones)."""
        sid = self.freeze_snapshot(disk_id, incremental=incremental, zone=zone).id
        self.seal_pending(disk_id)
        return self.get_snapshot(sid)

    def freeze_snapshot(
        self, disk_id: str, *, incremental: bool = True, zone: str | None = None
    ) -> SnapshotInfo:
        """Fix a snapshot's point in time now, cheaply (no page is read): the snapshot exists
        in state ``sealing`` and later writes go to a new head. ``seal_pending`` stores its
        pages; if the process dies first, ``Engine.open`` seals it. StorageFull (nothing made)
        unless the pages written since the last snapshot fit above the space reserve; ``zone``
        as ``create_snapshot``."""
        self.check_zone(zone)
        with self.disk_lock(disk_id):
            size, family, base, gen, _ = self._disk_row(disk_id)
            head = self.head(disk_id)
            self.reserve.check(head.held_bytes())
            sid = new_id()
            with self.lock:  # readers build views under it: they see the old state or the new
                with self.db.begin() as conn:
                    catalog.insert_snapshot(
                        conn,
                        id=sid,
                        family_id=family,
                        disk_id=disk_id,
                        parent_id=base,
                        seq=catalog.next_seq(conn),
                        size_bytes=size,
                        incremental=incremental,
                        self_contained=not incremental,
                        state="sealing",
                        frozen_gen=gen,
                        created_at=self.clock(),
                        zone=zone,
                    )
                    catalog.update_disk(conn, disk_id, base_id=sid, head_gen=gen + 1)
                self._frozen[sid] = head
                self._heads[disk_id] = Head(
                    disk_id, gen + 1, Overlay(head_root(self.data_dir, disk_id, gen + 1))
                )
        return self.get_snapshot(sid)

    def seal_pending(self, disk_id: str, *, locked: bool = False) -> None:
        """Seal every snapshot of the disk still sealing, oldest first."""
        if not locked:
            with self.seal_lock(disk_id):
                self.seal_pending(disk_id, locked=True)
            return
        with self.db.connect() as conn:
            rows = [r for r in catalog.snapshots_in_state(conn, "sealing") if r.disk_id == disk_id]
        for row in rows:
            self._seal(self.maps.node(row.id))

    def _seal(self, node: Node) -> None:
        assert node.disk_id is not None
        assert node.frozen_gen is not None
        disk_id, gen = node.disk_id, node.frozen_gen
        head = self.frozen_head(node)
        parent = self.maps.lineage(node.parent_id)
        if node.zone is None:  # zone-redundant: so must be what it reads through
            self.harden(parent)
        with self.writer(node.zone) as writer:
            if node.incremental:
                entries = seal.seal_incremental(writer, head, parent)
            else:
                view = View(f"snapshot {node.id}", node.size_bytes, parent, [head], node.id)
                entries = seal.seal_full(writer, self.chunks, head, view)
            writer.finish()
            with self.lock:
                with self.db.begin() as conn:
                    catalog.put_segments(conn, node.id, segment_blobs(entries))
                    writer.commit(conn)
                    catalog.update_snapshot(conn, node.id, state="ready", frozen_gen=None)
                # the next snapshot of this disk reads this map at once: keep it, don't reload
                # it (under the lock, so no fold into this snapshot can come in between)
                self.maps.put(replace(node, state="ready", frozen_gen=None, map=NodeMap(entries)))
            self._frozen.pop(node.id, None)
        head.retired = True  # reads holding it redo their chunk from the sealed snapshot
        self.trash.discard(head.overlay.root)
        # the frozen generation's bitmap rows are dead now (only a sealing snapshot's or the live
        # generation's rows are ever read): drop them off the critical path (redone at open)
        self.trash.later(lambda: self._drop_head_gen(disk_id, gen))
        self.collapse(node.parent_id)

    def copy_snapshot(self, snapshot_id: str, zone: str | None = None) -> SnapshotInfo:
        """A new full, self-contained snapshot with the same content as snapshot_id, which must
        be a ready full snapshot (an incremental one raises InvalidInput: those are copied to
        another region with CopyStart). The copy starts a family of its own (no disk, no
        parent) and outlives the source, its disk, GC, compaction and reopening.

        It stores no bytes: its map names the source's (immutable, content-addressed) versions,
        which GC keeps while any map names them and repacking repoints in every map alike. One
        transaction writes the copy's row, ready, and its map, so a crash leaves either no copy
        or a whole one. Cost: O(allocated chunks) of metadata, under the engine lock. ``zone``
        None (zone-redundant) first spreads the source's packs kept in one zone to every zone:
        copying an LRS snapshot to a ZRS one hardens it."""
        self.check_zone(zone)
        if zone is None:
            self.harden([self._ready(snapshot_id)])
        with self.lock:  # no fold, repack or delete can change the source's map meanwhile
            source = self._ready(snapshot_id)
            if source.incremental:
                raise InvalidInput(
                    f"snapshot {snapshot_id} is incremental: only full snapshots can be copied "
                    "within a region; incremental snapshots are copied to another region with "
                    "CopyStart",
                    snapshot=snapshot_id,
                )
            entries = seal.copy_full_map(source)
            sid = new_id()
            with self.db.begin() as conn:
                catalog.insert_snapshot(
                    conn,
                    id=sid,
                    family_id=new_id(),
                    disk_id=None,
                    parent_id=None,
                    seq=catalog.next_seq(conn),
                    size_bytes=source.size_bytes,
                    incremental=False,
                    self_contained=True,
                    state="ready",
                    frozen_gen=None,
                    created_at=self.clock(),
                    zone=zone,
                )
                catalog.put_segments(conn, sid, segment_blobs(entries))
        return self.get_snapshot(sid)

    def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """A visible snapshot, or NotFound. Reads one catalog row (no block map)."""
        with self.db.connect() as conn:
            row = catalog.snapshot(conn, snapshot_id)
        if row is None or row.state == "deleted":
            raise NotFound(f"snapshot {snapshot_id} not found", snapshot=snapshot_id)
        return self._info(row)

    def list_snapshots(self, family_id: str | None = None) -> list[SnapshotInfo]:
        """Visible snapshots, oldest first; only one family's when family_id is given."""
        with self.db.connect() as conn:
            rows = catalog.all_snapshots(conn)
        return [
            self._info(r)
            for r in rows
            if r.state != "deleted" and (family_id is None or r.family_id == family_id)
        ]

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; every other snapshot and disk keeps its exact content. A snapshot
        being imported may be deleted: its import stops and what it stored becomes garbage."""
        with self.lock:
            if self._visible(snapshot_id).state == "sealing":
                self._ready(snapshot_id)  # raises NotReady
            with self.db.begin() as conn:
                catalog.update_snapshot(conn, snapshot_id, state="deleted")
            self.maps.invalidate(snapshot_id)
        self.collapse_or_postpone(snapshot_id)

    def collapse_or_postpone(self, snapshot_id: str | None) -> None:
        """``collapse``, after a deletion committed: a fold the storage refuses now is left to
        ``finish_pending`` (the deletion stands; the snapshot stays a hidden node meanwhile)."""
        try:
            self.collapse(snapshot_id)
        except Exception as exc:
            self.postponed(f"folding deleted snapshot {snapshot_id}", exc)

    def collapse(self, snapshot_id: str | None) -> None:
        """Fold a deleted snapshot into its children once no disk builds on it, then its parent
        if that was deleted too and waited for it."""
        if snapshot_id is None:
            return
        with self.lock:
            try:
                node = self.maps.node(snapshot_id)
            except NotFound:
                return
            with self.db.connect() as conn:
                if node.state != "deleted" or catalog.disks_on_base(conn, node.id):
                    return
                kids = [self.maps.node(r.id, conn) for r in catalog.children(conn, node.id)]
            if any(k.state in ("sealing", "importing") for k in kids):
                return
            if self._zone_redundant_readers(kids):  # they will read the node's parents
                self.harden(self.maps.lineage(node.parent_id))
            with self.writer() as writer:
                folded = {k.id: fold_into(writer, self.objects, node, k) for k in kids}
                writer.finish()
                with self.db.begin() as conn:
                    for kid_id, entries in folded.items():
                        old = {seg: b"" for seg, _ in catalog.segments(conn, kid_id)}
                        catalog.put_segments(conn, kid_id, old | segment_blobs(entries))
                        catalog.update_snapshot(conn, kid_id, parent_id=node.parent_id)
                    catalog.delete_snapshot_row(conn, node.id)
                    writer.commit(conn)
            self.maps.invalidate(node.id, *folded)
        # its parent may have waited for it (a deleted base under an import being deleted)
        self.collapse(node.parent_id)

    def _zone_redundant_readers(self, kids: list[Node]) -> bool:
        """Whether a zone-redundant snapshot reads through any of kids (one of them, or a
        descendant reading through it)."""
        seen = list(kids)
        while seen:
            node = seen.pop()
            if node.zone is None:
                return True
            with self.db.connect() as conn:
                below = [self.maps.node(r.id, conn) for r in catalog.children(conn, node.id)]
            seen.extend(k for k in below if not k.self_contained)
        return False

    def read_snapshot(self, snapshot_id: str, offset: int, length: int) -> bytes:
        return b"".join(self.iter_read_snapshot(snapshot_id, offset, length))

    def iter_read_snapshot(
        self, snapshot_id: str, offset: int, length: int
    ) -> Iterator[memoryview]:
        """A snapshot's bytes, streamed a chunk at a time."""
        return self._stream(self.snapshot_view(snapshot_id), offset, length)

    def snapshot_view(self, snapshot_id: str) -> View:
        with self.lock:
            node = self._ready(snapshot_id)
            return View(
                f"snapshot {snapshot_id}",
                node.size_bytes,
                self.maps.lineage(snapshot_id),
                snapshot_id=snapshot_id,
            )

    def restore_disk(self, snapshot_id: str, size_bytes: int | None = None) -> DiskInfo:
        """A new disk with the snapshot's content, at once: it shares the snapshot's versions."""
        with self.lock:
            node = self._ready(snapshot_id)
            size = node.size_bytes if size_bytes is None else check_size(size_bytes)
            if size < node.size_bytes:
                raise InvalidInput(
                    f"a disk restored from snapshot {snapshot_id} needs at least "
                    f"{node.size_bytes} bytes",
                    size_bytes=size,
                )
            disk_id = new_id()
            with self.db.begin() as conn:
                catalog.insert_disk(
                    conn,
                    id=disk_id,
                    family_id=new_id(),
                    size_bytes=size,
                    base_id=snapshot_id,
                    head_gen=1,
                    created_at=self.clock(),
                )
        return self.get_disk(disk_id)

    def diff(self, base_id: str | None, target_id: str) -> diffs.Diff:
        """Pages that differ between two snapshots of one family (base None: all allocated
        pages of target). Either may be the older."""
        with self.lock:
            target = self._ready(target_id)
            if base_id is None:
                return diffs.Diff(
                    diffs.allocated(self.maps.lineage(target_id), target.size_bytes), []
                )
            base = self._ready(base_id)
            if base.family_id != target.family_id:
                raise InvalidInput(
                    f"snapshots {base_id} and {target_id} are not of the same family",
                    base=base_id,
                    target=target_id,
                )
            path = path_between(self.maps.ancestry(target_id), base_id)
            if path is None:
                path = path_between(self.maps.ancestry(base_id), target_id)
            if path is None:
                raise InvalidInput(f"no lineage joins {base_id} and {target_id}")
            return diffs.diff(path, self.maps.lineage(target_id), target.size_bytes)

    def allocated(self, snapshot_id: str) -> list[tuple[int, int]]:
        """Byte extents of a snapshot's non-zero pages."""
        return self.diff(None, snapshot_id).changed
