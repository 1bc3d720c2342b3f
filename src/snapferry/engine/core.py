"""The Engine: one region's disks and snapshots over a metadata database and a chunk store.

Thread safety: every public method may be called from any thread. A per-disk lock orders writes
against the freeze of a snapshot (a write lands wholly before or wholly after it); a per-disk seal
lock seals a disk's snapshots one at a time, oldest first; the engine lock guards metadata changes
and the building of read views. One process owns a data directory at a time (``region.lock``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sqlalchemy import Engine as SqlEngine

from snapferry.codec import Codec
from snapferry.engine import bitmaps, blockmap, seal
from snapferry.engine import diff as diffs
from snapferry.engine.fold import fold_into
from snapferry.engine.head import Head, Overlay, Trash, head_root
from snapferry.engine.maps import MapCache, Node
from snapferry.engine.models import DiskInfo, SnapshotInfo
from snapferry.engine.objects import ObjectReader, PackWriter, Pins
from snapferry.engine.resolve import ChunkReader, View
from snapferry.errors import InvalidInput, NotFound, NotReady, RegionBusy
from snapferry.ids import new_id
from snapferry.meta import catalog
from snapferry.meta.db import open_database, sqlite_url
from snapferry.settings import MAX_DISK_BYTES, PAGE, PAGES_PER_CHUNK, SECTOR
from snapferry.store.base import ChunkStore
from snapferry.store.local import LocalStore

CACHE_BYTES = 256 * 1024 * 1024


def _check_size(size_bytes: int) -> int:
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool):
        raise InvalidInput("disk size must be an integer number of bytes")
    if size_bytes <= 0 or size_bytes % SECTOR or size_bytes > MAX_DISK_BYTES:
        raise InvalidInput(
            f"disk size {size_bytes} must be a positive multiple of {SECTOR} bytes "
            f"up to {MAX_DISK_BYTES} (32 TiB)",
            size_bytes=size_bytes,
        )
    return size_bytes


def _check_range(offset: int, length: int, size_bytes: int, what: str) -> None:
    for value in (offset, length):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInput(f"{what} offsets and lengths must be integers, not {value!r}")
    if offset < 0 or length < 0 or offset % SECTOR or length % SECTOR:
        raise InvalidInput(
            f"{what} at offset {offset} of {length} bytes is not aligned to {SECTOR} bytes",
            offset=offset,
            length=length,
        )
    if offset + length > size_bytes:
        raise InvalidInput(
            f"{what} [{offset}, {offset + length}) runs past the end of the disk "
            f"({size_bytes} bytes)",
            offset=offset,
            length=length,
        )


class Engine:
    """Disks, snapshots, diffs and restores of one region. Open with ``Engine.open``."""

    def __init__(
        self,
        data_dir: Path,
        db: SqlEngine,
        store: ChunkStore,
        *,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.data_dir = data_dir
        self.db = db
        self.store = store
        self.clock = clock
        self.codec = Codec()
        self.pins = Pins()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapferry-codec")
        self.objects = ObjectReader(db, store, self.codec, cache_bytes)
        self.chunks = ChunkReader(self.objects)
        self.maps = MapCache(db)
        self.lock = threading.RLock()
        self._heads: dict[str, Head] = {}
        self._frozen: dict[str, Head] = {}
        self._disk_locks: dict[str, threading.Lock] = {}
        self._seal_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._lockfile: int | None = None
        self.trash = Trash(data_dir / "trash")

    # --- opening and closing -----------------------------------------------------------------
    @classmethod
    def open(
        cls,
        data_dir: Path | str,
        *,
        store: ChunkStore | None = None,
        db_url: str | None = None,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = CACHE_BYTES,
    ) -> Engine:
        """Open (creating if needed) the region at data_dir, finishing any work a crash cut
        short: seals resume, deleted snapshots fold, orphaned head files go. Raises RegionBusy
        if another process has it open."""
        root = Path(data_dir)
        root.mkdir(parents=True, exist_ok=True)
        lockfile = os.open(root / "region.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lockfile)
            raise RegionBusy(
                f"region data directory {root} is in use by another snapferry process"
            ) from None
        try:
            db = open_database(db_url or sqlite_url(root / "meta.db"))
            engine = cls(
                root,
                db,
                store if store is not None else LocalStore(root / "store"),
                clock=clock,
                cache_bytes=cache_bytes,
            )
            engine._lockfile = lockfile
            engine._recover()
        except BaseException:
            os.close(lockfile)
            raise
        return engine

    def close(self) -> None:
        """Release the data directory. Acknowledged work is already durable."""
        self.pool.shutdown(wait=True)
        self.trash.close()
        self.db.dispose()
        if self._lockfile is not None:
            os.close(self._lockfile)
            self._lockfile = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        with self.db.connect() as conn:
            journals = catalog.journals(conn)
        for disk_id, gen, pages in journals:
            Overlay(head_root(self.data_dir, disk_id, gen)).replay_journal(
                np.frombuffer(pages, dtype=np.int64)
            )
            with self.db.begin() as conn:
                catalog.drop_journal(conn, disk_id, gen)
        with self.db.connect() as conn:
            sealing = catalog.snapshots_in_state(conn, "sealing")
            deleted = catalog.snapshots_in_state(conn, "deleted")
            disks = {r.id: int(r.head_gen) for r in catalog.all_disks(conn)}
        for disk_id in sorted({r.disk_id for r in sealing}):
            self.seal_pending(disk_id)
        for row in deleted:
            self.collapse(row.id)
        # We hold the region: a temp file left in the store is from a put a crash cut short.
        cleanup = getattr(self.store, "cleanup_temp", None)
        if callable(cleanup):
            cleanup(older_than=0.0)
        self.trash.empty()
        with self.db.begin() as conn:
            catalog.drop_stale_head_gens(conn)
        heads = self.data_dir / "heads"
        if heads.is_dir():
            for disk_dir in heads.iterdir():
                live = disks.get(disk_dir.name)
                if live is None:
                    shutil.rmtree(disk_dir, ignore_errors=True)
                    continue
                keep = head_root(self.data_dir, disk_dir.name, live).name
                for gen_dir in disk_dir.iterdir():
                    if gen_dir.name != keep:
                        shutil.rmtree(gen_dir, ignore_errors=True)

    # --- locks and cached state --------------------------------------------------------------
    def _lock_of(self, table: dict[str, threading.Lock], key: str) -> threading.Lock:
        with self._locks_guard:
            lock = table.get(key)
            if lock is None:
                lock = table[key] = threading.Lock()
            return lock

    def disk_lock(self, disk_id: str) -> threading.Lock:
        return self._lock_of(self._disk_locks, disk_id)

    def seal_lock(self, disk_id: str) -> threading.Lock:
        return self._lock_of(self._seal_locks, disk_id)

    def _disk_row(self, disk_id: str) -> tuple[int, str, str | None, int, float]:
        with self.db.connect() as conn:
            row = catalog.disk(conn, disk_id)
        if row is None:
            raise NotFound(f"disk {disk_id} not found", disk=disk_id)
        return int(row.size_bytes), row.family_id, row.base_id, int(row.head_gen), row.created_at

    def head(self, disk_id: str) -> Head:
        """The disk's live head generation (loaded on first use)."""
        head = self._heads.get(disk_id)
        if head is None:
            _, _, _, gen, _ = self._disk_row(disk_id)
            head = self._load_head(disk_id, gen)
            self._heads[disk_id] = head
        return head

    def _load_head(self, disk_id: str, gen: int) -> Head:
        with self.db.connect() as conn:
            rows = catalog.head_bitmaps(conn, disk_id, gen)
        head = Head(disk_id, gen, Overlay(head_root(self.data_dir, disk_id, gen)))
        head.mark({chunk: np.frombuffer(blob, dtype=np.uint8) for chunk, blob in rows})
        return head

    # --- disks -------------------------------------------------------------------------------
    def create_disk(self, size_bytes: int) -> DiskInfo:
        """A new, empty (all-zero) disk. Costs only metadata, whatever its size."""
        _check_size(size_bytes)
        disk_id, now = new_id(), self.clock()
        with self.db.begin() as conn:
            catalog.insert_disk(
                conn,
                id=disk_id,
                family_id=new_id(),
                size_bytes=size_bytes,
                base_id=None,
                head_gen=1,
                created_at=now,
            )
        return self.get_disk(disk_id)

    def get_disk(self, disk_id: str) -> DiskInfo:
        size, family, base, _, created = self._disk_row(disk_id)
        source = None
        if base is not None:
            origin = self.maps.ancestry(base)
            source = next((n.id for n in origin if n.family_id != family), None)
        return DiskInfo(disk_id, size, family, created, source)

    def list_disks(self) -> list[DiskInfo]:
        with self.db.connect() as conn:
            ids = [r.id for r in catalog.all_disks(conn)]
        return [self.get_disk(i) for i in ids]

    def resize_disk(self, disk_id: str, size_bytes: int) -> DiskInfo:
        """Grow a disk; the new space reads as zeros. Shrinking is refused."""
        _check_size(size_bytes)
        with self.disk_lock(disk_id):
            current = self._disk_row(disk_id)[0]
            if size_bytes < current:
                raise InvalidInput(
                    f"disk {disk_id} is {current} bytes; disks only grow", size_bytes=size_bytes
                )
            with self.db.begin() as conn:
                catalog.update_disk(conn, disk_id, size_bytes=size_bytes)
        return self.get_disk(disk_id)

    def delete_disk(self, disk_id: str) -> None:
        """Delete a disk. Its snapshots stay readable."""
        with self.disk_lock(disk_id), self.seal_lock(disk_id):
            self.seal_pending(disk_id, locked=True)
            base = self._disk_row(disk_id)[2]
            with self.lock, self.db.begin() as conn:
                catalog.delete_disk_row(conn, disk_id)
            self._heads.pop(disk_id, None)
            self.trash.discard(self.data_dir / "heads" / disk_id)
        self.collapse(base)

    def write(self, disk_id: str, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write data at offset (both multiples of 512). Durable when this returns."""
        self.write_many(disk_id, [(offset, data)])

    def write_many(
        self, disk_id: str, writes: Iterable[tuple[int, bytes | bytearray | memoryview]]
    ) -> None:
        """Several writes with one durability barrier. All are validated before any lands."""
        size = self._disk_row(disk_id)[0]
        checked = []
        for offset, data in writes:
            view = memoryview(data).cast("B")
            _check_range(offset, len(view), size, "write")
            if len(view):
                checked.append((offset, view))
        if not checked:
            return
        with self.disk_lock(disk_id):
            head = self.head(disk_id)
            pending: dict[int, np.ndarray] = {}
            journal = _Journal()
            for offset, view in checked:
                first, end = bitmaps.page_span(offset, len(view))
                buf = self._page_aligned(disk_id, pending, journal, offset, view, first, end)
                held = _held(head, first, end)
                if held.any():
                    # pages an acknowledged write already put in this generation: overwriting
                    # them in place could tear; they go through the journal
                    self._write_fresh(head, first, buf, ~held)
                    journal.add(first, buf, held)
                else:
                    head.overlay.write(first * PAGE, buf)
                for chunk, mask in bitmaps.mark_pages(first, end).items():
                    bits = bitmaps.pack(mask)
                    old = pending[chunk] if chunk in pending else head.bits(chunk)
                    pending[chunk] = bits if old is None else old | bits
            if journal:
                head.overlay.write_journal(journal.parts)
            head.overlay.sync()
            packed = {c: m.tobytes() for c, m in pending.items()}
            with self.db.begin() as conn:
                catalog.put_head_bitmaps(conn, disk_id, head.gen, packed)
                if journal:
                    catalog.put_journal(conn, disk_id, head.gen, journal.pages().tobytes())
            if journal:
                head.overlay.replay_journal(journal.pages())
                with self.db.begin() as conn:
                    catalog.drop_journal(conn, disk_id, head.gen)
            head.mark(pending)

    @staticmethod
    def _write_fresh(head: Head, first: int, buf: memoryview, fresh: np.ndarray) -> None:
        firsts, counts = bitmaps.run_arrays(np.flatnonzero(fresh).astype(np.int64))
        for lo, count in zip(firsts.tolist(), counts.tolist(), strict=True):
            head.overlay.write((first + lo) * PAGE, buf[lo * PAGE : (lo + count) * PAGE])

    def _page_aligned(
        self,
        disk_id: str,
        pending: dict[int, np.ndarray],
        journal: _Journal,
        offset: int,
        data: memoryview,
        first: int,
        end: int,
    ) -> memoryview:
        """data widened to whole pages, the edges filled with the disk's current content."""
        start, stop = first * PAGE, end * PAGE
        if start == offset and stop == offset + len(data):
            return data
        buf = bytearray(stop - start)
        head = self.head(disk_id)
        for page in {first, end - 1}:
            chunk, index = divmod(page, PAGES_PER_CHUNK)
            bits = pending.get(chunk)
            journaled = journal.latest(page)
            if journaled is not None:
                content = journaled
            elif bits is not None and bitmaps.is_set(bits, index):
                content = head.overlay.gather(np.array([page], dtype=np.int64))[0]
            else:
                content = self.chunks.materialize(self._disk_view(disk_id), chunk)[index]
            buf[(page - first) * PAGE : (page - first + 1) * PAGE] = content.tobytes()
        buf[offset - start : offset - start + len(data)] = data
        return memoryview(buf)

    def _disk_view(self, disk_id: str, head: Head | None = None) -> View:
        with self.lock:
            size, _, base, _, _ = self._disk_row(disk_id)
            heads = [head if head is not None else self.head(disk_id)]
            while base is not None:
                node = self.maps.node(base)
                if node.state != "sealing":
                    break
                heads.append(self._frozen[base])
                base = node.parent_id
            return View(f"disk {disk_id}", size, self.maps.lineage(base), heads)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        """Bytes of a disk (offset and length multiples of 512)."""
        return b"".join(self.iter_read(disk_id, offset, length))

    def iter_read(self, disk_id: str, offset: int, length: int) -> Iterator[bytes]:
        """A disk's bytes, streamed a chunk at a time."""
        view = self._disk_view(disk_id)
        _check_range(offset, length, view.size_bytes, "read")
        return self.chunks.iter_range(view, offset, length)

    # --- snapshots -----------------------------------------------------------------------------
    def create_snapshot(self, disk_id: str, *, incremental: bool = True) -> SnapshotInfo:
        """Snapshot a disk as it is when the call starts. Incremental snapshots store only the
        pages written since the previous one; full ones (``incremental=False``) are
        self-contained."""
        with self.disk_lock(disk_id):
            size, family, base, gen, _ = self._disk_row(disk_id)
            head = self.head(disk_id)
            sid = new_id()
            with self.lock, self.db.begin() as conn:
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
                )
                catalog.update_disk(conn, disk_id, base_id=sid, head_gen=gen + 1)
            self._frozen[sid] = head
            self._heads[disk_id] = Head(
                disk_id, gen + 1, Overlay(head_root(self.data_dir, disk_id, gen + 1))
            )
        self.seal_pending(disk_id)
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
        head = self._frozen.get(node.id) or self._load_head(node.disk_id, node.frozen_gen)
        parent = self.maps.lineage(node.parent_id)
        with self.writer() as writer:
            if node.incremental:
                entries = seal.seal_incremental(writer, head, parent)
            else:
                view = View(f"snapshot {node.id}", node.size_bytes, parent, [head], node.id)
                entries = seal.seal_full(writer, self.chunks, head, view)
            sizes = writer.finish()
            with self.lock, self.db.begin() as conn:
                catalog.put_segments(conn, node.id, _segment_blobs(entries))
                catalog.mark_packs_live(conn, sizes)
                catalog.update_snapshot(conn, node.id, state="ready", frozen_gen=None)
            self.maps.invalidate(node.id)
            self._frozen.pop(node.id, None)
        self.trash.discard(head.overlay.root)
        # the frozen generation's bitmap rows are dead now (only a sealing snapshot's or the live
        # generation's rows are ever read): drop them off the critical path (redone at open)
        self.trash.later(lambda: self._drop_head_gen(disk_id, gen))
        self.collapse(node.parent_id)

    def _drop_head_gen(self, disk_id: str, gen: int) -> None:
        with self.db.begin() as conn:
            catalog.drop_head_gen(conn, disk_id, gen)

    def writer(self) -> PackWriter:
        """A pack writer for one operation (use as a context manager)."""
        return PackWriter(self.db, self.store, self.codec, self.pins, self.pool, self.clock)

    def _info(self, node: Node) -> SnapshotInfo:
        return SnapshotInfo(
            node.id,
            node.disk_id,
            node.family_id,
            node.parent_id,
            node.size_bytes,
            node.incremental,
            node.state,
            node.created_at,
            node.seq,
        )

    def _visible(self, snapshot_id: str) -> Node:
        node = self.maps.node(snapshot_id)
        if node.state == "deleted":
            raise NotFound(f"snapshot {snapshot_id} not found", snapshot=snapshot_id)
        return node

    def _ready(self, snapshot_id: str) -> Node:
        node = self._visible(snapshot_id)
        if node.state != "ready":
            raise NotReady(f"snapshot {snapshot_id} is still being sealed", snapshot=snapshot_id)
        return node

    def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        return self._info(self._visible(snapshot_id))

    def list_snapshots(self, family_id: str | None = None) -> list[SnapshotInfo]:
        """Visible snapshots, oldest first; only one family's when family_id is given."""
        with self.db.connect() as conn:
            rows = catalog.all_snapshots(conn)
        return [
            self._info(self.maps.node(r.id))
            for r in rows
            if r.state != "deleted" and (family_id is None or r.family_id == family_id)
        ]

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot; every other snapshot and disk keeps its exact content."""
        with self.lock:
            self._ready(snapshot_id)
            with self.db.begin() as conn:
                catalog.update_snapshot(conn, snapshot_id, state="deleted")
            self.maps.invalidate(snapshot_id)
        self.collapse(snapshot_id)

    def collapse(self, snapshot_id: str | None) -> None:
        """Fold a deleted snapshot into its children once no disk builds on it."""
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
            if any(k.state == "sealing" for k in kids):
                return
            with self.writer() as writer:
                folded = {k.id: fold_into(writer, self.objects, node, k) for k in kids}
                sizes = writer.finish()
                with self.db.begin() as conn:
                    for kid_id, entries in folded.items():
                        old = {seg: b"" for seg, _ in catalog.segments(conn, kid_id)}
                        catalog.put_segments(conn, kid_id, old | _segment_blobs(entries))
                        catalog.update_snapshot(conn, kid_id, parent_id=node.parent_id)
                    catalog.delete_snapshot_row(conn, node.id)
                    catalog.mark_packs_live(conn, sizes)
            self.maps.invalidate(node.id, *folded)

    def read_snapshot(self, snapshot_id: str, offset: int, length: int) -> bytes:
        return b"".join(self.iter_read_snapshot(snapshot_id, offset, length))

    def iter_read_snapshot(self, snapshot_id: str, offset: int, length: int) -> Iterator[bytes]:
        """A snapshot's bytes, streamed a chunk at a time."""
        view = self.snapshot_view(snapshot_id)
        _check_range(offset, length, view.size_bytes, "read")
        return self.chunks.iter_range(view, offset, length)

    def snapshot_view(self, snapshot_id: str) -> View:
        with self.lock:
            node = self._ready(snapshot_id)
            return View(
                f"snapshot {snapshot_id}",
                node.size_bytes,
                self.maps.lineage(snapshot_id),
                snapshot_id=snapshot_id,
            )

    def disk_view(self, disk_id: str) -> View:
        return self._disk_view(disk_id)

    def restore_disk(self, snapshot_id: str, size_bytes: int | None = None) -> DiskInfo:
        """A new disk with the snapshot's content, at once: it shares the snapshot's versions."""
        with self.lock:
            node = self._ready(snapshot_id)
            size = node.size_bytes if size_bytes is None else _check_size(size_bytes)
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
            path = _path_between(self.maps.ancestry(target_id), base_id)
            if path is None:
                path = _path_between(self.maps.ancestry(base_id), target_id)
            if path is None:
                raise InvalidInput(f"no lineage joins {base_id} and {target_id}")
            return diffs.diff(path, self.maps.lineage(target_id), target.size_bytes)

    def allocated(self, snapshot_id: str) -> list[tuple[int, int]]:
        """Byte extents of a snapshot's non-zero pages."""
        return self.diff(None, snapshot_id).changed


class _Journal:
    """The pages of one ``write_many`` that overwrite pages its head already holds, in order."""

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self._pages: list[np.ndarray] = []

    def __bool__(self) -> bool:
        return bool(self._pages)

    def add(self, first: int, buf: memoryview, held: np.ndarray) -> None:
        rows = np.flatnonzero(held).astype(np.int64)
        pages = np.frombuffer(buf, dtype=np.uint8).reshape(-1, PAGE)[rows]
        self._pages.append(first + rows)
        self.parts.append(memoryview(pages.reshape(-1).data))

    def pages(self) -> np.ndarray:
        return np.concatenate(self._pages)

    def latest(self, page: int) -> np.ndarray | None:
        """The newest journaled content of page in this batch, if any."""
        for pages, part in zip(reversed(self._pages), reversed(self.parts), strict=True):
            hit = np.flatnonzero(pages == page)
            if len(hit):
                row = int(hit[-1])
                return np.frombuffer(part, dtype=np.uint8)[row * PAGE : (row + 1) * PAGE]
        return None


def _held(head: Head, first: int, end: int) -> np.ndarray:
    """Which of pages ``[first, end)`` the head generation already holds (committed)."""
    held = np.zeros(end - first, dtype=bool)
    for chunk in range(first // PAGES_PER_CHUNK, (end - 1) // PAGES_PER_CHUNK + 1):
        mask = head.mask(chunk)
        if mask is None:
            continue
        lo = max(first, chunk * PAGES_PER_CHUNK)
        hi = min(end, (chunk + 1) * PAGES_PER_CHUNK)
        held[lo - first : hi - first] = mask[
            lo - chunk * PAGES_PER_CHUNK : hi - chunk * PAGES_PER_CHUNK
        ]
    return held


def _path_between(ancestry: list[Node], ancestor_id: str) -> list[Node] | None:
    """The nodes of ancestry before ancestor_id, if ancestor_id is in it."""
    for i, node in enumerate(ancestry):
        if node.id == ancestor_id:
            return ancestry[:i]
    return None


def _segment_blobs(entries: blockmap.Entries) -> dict[int, bytes]:
    return {
        seg: blockmap.encode_segment(part) for seg, part in blockmap.by_segment(entries).items()
    }
