"""The engine's shared state and helpers: database, store, caches, locks, read views.

Thread safety: every public method may be called from any thread. A per-disk lock orders writes
against the freeze of a snapshot (a write lands wholly before or wholly after it); a per-disk seal
lock seals a disk's snapshots one at a time, oldest first; the engine lock guards metadata changes
and the building of read views. One process owns a data directory at a time (``region.lock``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import Row

from snapferry.codec import Codec
from snapferry.engine import blockmap
from snapferry.engine.checks import check_range
from snapferry.engine.head import Head, Overlay, Trash, head_root
from snapferry.engine.maps import MapCache, Node
from snapferry.engine.models import DiskInfo, SnapshotInfo
from snapferry.engine.objects import Buffers, ObjectReader, PackWriter, Pins
from snapferry.engine.resolve import ChunkReader, View
from snapferry.engine.space import Reserve
from snapferry.errors import InvalidInput, NotFound, NotReady, StoreError, ZoneUnavailable
from snapferry.faults import THROTTLED, brief
from snapferry.meta import catalog
from snapferry.store.base import ChunkStore
from snapferry.store.zoned import ZonedStore

CACHE_BYTES = 256 * 1024 * 1024


class EngineBase:
    """State shared by the engine's operations: database, store, caches, locks and read views."""

    def __init__(
        self,
        data_dir: Path,
        db: SqlEngine,
        store: ChunkStore,
        *,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = CACHE_BYTES,
        reserve: Reserve | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.reserve = reserve or Reserve(data_dir)
        self.db = db
        self.store = store
        self.clock = clock
        self.codec = Codec()
        self.pins = Pins()
        self.buffers = Buffers()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapferry-codec")
        self.trash = Trash(data_dir / "trash")
        self.objects = ObjectReader(db, store, self.codec, cache_bytes, self.trash.later)
        self.chunks = ChunkReader(self.objects)
        self.maps = MapCache(db)
        self.lock = threading.RLock()
        self._heads: dict[str, Head] = {}
        self._frozen: dict[str, Head] = {}
        self._disk_locks: dict[str, threading.Lock] = {}
        self._seal_locks: dict[str, threading.Lock] = {}
        self.maintenance_lock = threading.Lock()
        """GC and compaction run one pass at a time (each holds the engine lock only in part)."""
        self._locks_guard = threading.Lock()
        self._lockfile: int | None = None

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

    def get_disk(self, disk_id: str) -> DiskInfo:
        size, family, base, _, created = self._disk_row(disk_id)
        source = None
        if base is not None:
            origin = self.maps.ancestry(base)
            source = next((n.id for n in origin if n.family_id != family), None)
        return DiskInfo(disk_id, size, family, created, source)

    def head(self, disk_id: str) -> Head:
        """The disk's live head generation (loaded on first use)."""
        head = self._heads.get(disk_id)
        if head is None:
            with self.lock:  # one Head per generation, however many threads ask at once
                head = self._heads.get(disk_id)
                if head is None:
                    _, _, _, gen, _ = self._disk_row(disk_id)
                    head = self._heads[disk_id] = self._load_head(disk_id, gen)
        return head

    @staticmethod
    def postponed(what: str, exc: Exception) -> None:
        """One line a minute for work left for later (a traceback helps nobody here)."""
        THROTTLED.warn(
            "postponed", "%s is postponed (%s); it is tried again later", what, brief(exc)
        )

    def frozen_head(self, node: Node) -> Head:
        """The head generation a sealing snapshot froze (loaded on first use: a seal that could
        not finish at open leaves it to be read from its overlay until it does)."""
        head = self._frozen.get(node.id)
        if head is None:
            assert node.disk_id is not None
            assert node.frozen_gen is not None
            with self.lock:
                head = self._frozen.get(node.id)
                if head is None:
                    head = self._frozen[node.id] = self._load_head(node.disk_id, node.frozen_gen)
        return head

    def _load_head(self, disk_id: str, gen: int) -> Head:
        with self.db.connect() as conn:
            rows = catalog.head_bitmaps(conn, disk_id, gen)
        head = Head(disk_id, gen, Overlay(head_root(self.data_dir, disk_id, gen)))
        head.mark({chunk: np.frombuffer(blob, dtype=np.uint8) for chunk, blob in rows})
        return head

    def _disk_view(self, disk_id: str, head: Head | None = None) -> View:
        with self.lock:
            size, _, base, _, _ = self._disk_row(disk_id)
            heads = [head if head is not None else self.head(disk_id)]
            while base is not None:
                node = self.maps.node(base)
                if node.state != "sealing":
                    break
                heads.append(self.frozen_head(node))
                base = node.parent_id
            return View(f"disk {disk_id}", size, self.maps.lineage(base), heads)

    def _current_chunk(self, disk_id: str, chunk: int) -> npt.NDArray[np.uint8]:
        """Chunk ``chunk`` of the disk as it is now: read again from a fresh view if a snapshot
        sealed (and discarded) a head generation of the view while it was being read."""

        def refresh() -> View:
            return self._disk_view(disk_id)

        return self.chunks.materialize_current(refresh(), chunk, refresh)[0]

    def _drop_head_gen(self, disk_id: str, gen: int) -> None:
        with self.db.begin() as conn:
            catalog.drop_head_gen(conn, disk_id, gen)

    def _stream(
        self,
        view: View,
        offset: int,
        length: int,
        refresh: Callable[[], View] | None = None,
    ) -> Iterator[memoryview]:
        """The view's bytes in ``[offset, offset+length)``, validated, a chunk at a time
        (``refresh``: how to get a current view of a disk, see ``ChunkReader.iter_range``)."""
        check_range(offset, length, view.size_bytes, "read")
        return self.chunks.iter_range(view, offset, length, refresh)

    def writer(self, zone: str | None = None) -> PackWriter:
        """A pack writer for one operation (use as a context manager), writing to ``zone``
        alone, or (None) to every zone."""
        return PackWriter(
            self.db, self.store, self.codec, self.pins, self.pool, self.buffers, self.clock, zone
        )

    def check_zone(self, zone: str | None) -> None:
        """InvalidInput unless zone is None or one of the region's zones."""
        if zone is None:
            return
        zones = list(self.store.zones) if isinstance(self.store, ZonedStore) else []
        if zone not in zones:
            raise InvalidInput(
                f"zone {zone[:16]!r} is not one of this region's zones "
                f"({', '.join(zones) or 'it has none'})",
                zone=zone[:16],
            )

    def harden(self, nodes: Sequence[Node]) -> int:
        """Make every pack the nodes' maps name zone-redundant, one at a time:
        read from its zone, recorded as every zone's (a crash then leaves it to the zone
        repair), then copied into the others. What a zone-redundant snapshot reads through must
        be as redundant as it. ZoneUnavailable if a pack's zone cannot give it. How many packs
        it spread."""
        if not isinstance(self.store, ZonedStore):
            return 0
        ids: set[int] = set()
        for node in nodes:
            ids.update(np.unique(node.map.entries["pack"]).tolist())
        with self.db.connect() as conn:
            zonal = catalog.zonal_packs(conn, sorted(ids))
        for pack_id, (key, zone) in zonal.items():
            try:  # read first: a pack its zone cannot give stays recorded in that zone
                data = self.store.zones[zone].get(key)
            except StoreError as exc:
                raise ZoneUnavailable(
                    f"pack {key} is kept in zone {zone} alone, which is unavailable: {exc.message}",
                    zone=zone,
                ) from None
            with self.db.begin() as conn:
                catalog.spread_packs(conn, [pack_id])
            self.store.put_if_absent(key, data)
        if zonal:  # a place cached before is still right (its zone holds the pack), only narrow
            self.objects.forget_places()
        return len(zonal)

    @staticmethod
    def _info(row: Node | Row[Any]) -> SnapshotInfo:
        """What callers see of a snapshot (from its cached node or its catalog row)."""
        return SnapshotInfo(
            row.id,
            row.disk_id,
            row.family_id,
            row.parent_id,
            int(row.size_bytes),
            bool(row.incremental),
            row.state,
            float(row.created_at),
            int(row.seq),
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


def path_between(ancestry: list[Node], ancestor_id: str) -> list[Node] | None:
    """The nodes of ancestry before ancestor_id, if ancestor_id is in it."""
    for i, node in enumerate(ancestry):
        if node.id == ancestor_id:
            return ancestry[:i]
    return None


def segment_blobs(entries: blockmap.Entries) -> dict[int, bytes]:
    return {
        seg: blockmap.encode_segment(part) for seg, part in blockmap.by_segment(entries).items()
    }
