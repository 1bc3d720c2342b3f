"""The Engine: one region's disks and snapshots over a metadata database and a chunk store.

``Engine.open`` recovers what a crash cut short; the operations live in ``disks`` (DiskOps) and
``snapshots`` (SnapshotOps) over the shared state of ``base`` (see there for thread safety).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from snapferry.engine.base import CACHE_BYTES
from snapferry.engine.disks import DiskOps
from snapferry.engine.head import Overlay, head_root
from snapferry.engine.imports import ImportOps
from snapferry.engine.refs import scan
from snapferry.engine.space import Reserve
from snapferry.engine.zones import open_stores
from snapferry.errors import IntegrityError, InvalidInput, RegionBusy
from snapferry.faults import storage_fault
from snapferry.meta import catalog
from snapferry.meta.db import open_database, sqlite_url
from snapferry.store.base import ChunkStore


class Engine(DiskOps, ImportOps):
    """Disks, snapshots, diffs and restores of one region. Open with ``Engine.open``."""

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
        reserve: Reserve | None = None,
        zones: Sequence[str] | None = None,
    ) -> Engine:
        """Open (creating if needed) the region at data_dir, finishing any work a crash cut
        short: seals resume, deleted snapshots fold, orphaned head files go. Raises RegionBusy
        if another process has it open. ``reserve``: the space kept free for deletions and
        recovery (default: 1 % of the filesystem, at most 256 MiB). ``zones``: the region's zones
        (recorded; None: those recorded before), each keeping every pack in a store of its own
        (``engine.zones``); ignored when ``store`` is given."""
        root = Path(data_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
            lockfile = os.open(root / "region.lock", os.O_RDONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InvalidInput(
                f"cannot open a region at {root}: {exc.strerror or exc}", path=str(root)
            ) from None
        try:
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lockfile)
            raise RegionBusy(
                f"region data directory {root} is in use by another snapferry process"
            ) from None
        try:
            try:
                db = open_database(db_url or sqlite_url(root / "meta.db"))
            except SQLAlchemyError as exc:
                raise IntegrityError(
                    f"the metadata database of the region at {root} cannot be opened: "
                    f"{type(exc.orig if hasattr(exc, 'orig') else exc).__name__}",
                    path=str(root),
                ) from None
            engine = cls(
                root,
                db,
                store if store is not None else open_stores(root, db, zones, clock()),
                clock=clock,
                cache_bytes=cache_bytes,
                reserve=reserve or Reserve(root),
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
        close = getattr(self.store, "close", None)
        if callable(close):  # a zoned store's write threads
            close()
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
        self.finish_pending()  # what cannot finish now (no space) is left for later
        with self.db.connect() as conn:
            disks = {r.id: int(r.head_gen) for r in catalog.all_disks(conn)}
            frozen = {
                (r.disk_id, r.frozen_gen) for r in catalog.snapshots_in_state(conn, "sealing")
            }
        # We hold the region: a temp file left in the store is from a put a crash cut short.
        cleanup = getattr(self.store, "cleanup_temp", None)
        if callable(cleanup):
            cleanup(older_than=0.0)
        self.trash.empty()
        with self.db.begin() as conn:
            catalog.drop_stale_head_gens(conn)
        self._index_versions()
        heads = self.data_dir / "heads"
        if heads.is_dir():
            for disk_dir in heads.iterdir():
                live = disks.get(disk_dir.name)
                # a deleted disk's frozen generations stay while their snapshots wait to seal
                gens = [g for d, g in frozen if d == disk_dir.name]
                if live is not None:
                    gens.append(live)
                if not gens:
                    shutil.rmtree(disk_dir, ignore_errors=True)
                    continue
                keep = {head_root(self.data_dir, disk_dir.name, gen).name for gen in gens}
                for gen_dir in disk_dir.iterdir():
                    if gen_dir.name not in keep:
                        shutil.rmtree(gen_dir, ignore_errors=True)

    def finish_pending(self) -> int:
        """Seal the snapshots still sealing and fold the deleted snapshots that can be, as far
        as the storage lets: a seal or fold that fails (no space, a read-only filesystem) is
        logged and left for the next call — the disk reads its frozen pages meanwhile, so
        nothing acknowledged is lost. A disk whose seal runs elsewhere now is skipped. How many
        snapshots are still sealing or deleted-but-not-folded afterwards."""
        with self.db.connect() as conn:
            sealing = catalog.snapshots_in_state(conn, "sealing")
        for disk_id in sorted({r.disk_id for r in sealing}):
            lock = self.seal_lock(disk_id)
            if not lock.acquire(blocking=False):
                continue
            try:
                self.seal_pending(disk_id, locked=True)
            except Exception as exc:
                self.postponed(f"sealing the snapshots of disk {disk_id}", exc)
            finally:
                lock.release()
        with self.db.connect() as conn:
            deleted = catalog.snapshots_in_state(conn, "deleted")
        for row in deleted:
            try:
                self.collapse(row.id)
            except Exception as exc:
                self.postponed(f"folding deleted snapshot {row.id}", exc)
        with self.db.connect() as conn:
            return len(catalog.snapshots_in_state(conn, "sealing")) + len(
                catalog.snapshots_in_state(conn, "deleted")
            )

    def _index_versions(self) -> None:
        """Fill the version index from the block maps if it is empty while packs exist (a
        region made before the index): once, in one transaction."""
        with self.db.connect() as conn:
            if catalog.versions_count(conn) or not catalog.all_packs(conn):
                return
        rows = scan(self.db).rows
        found = {
            (bytes(r["oid"]), int(r["pack"]), int(r["offset"]), int(r["length"])) for r in rows
        }
        with self.db.begin() as conn:
            catalog.put_versions(conn, sorted(found))

    def delete_disk(self, disk_id: str) -> None:
        """Delete a disk. Its snapshots stay readable: one whose seal the storage refuses now
        keeps its frozen pages (overlay and bitmap rows) until ``finish_pending`` seals it, so
        deleting a disk frees its own space even on a full region."""
        with self.disk_lock(disk_id), self.seal_lock(disk_id):
            try:
                self.seal_pending(disk_id, locked=True)
            except Exception as exc:
                if storage_fault(exc) is None:
                    raise
                self.postponed(f"sealing the snapshots of deleted disk {disk_id}", exc)
            _, _, base, gen, _ = self._disk_row(disk_id)
            with self.lock, self.db.begin() as conn:
                catalog.delete_disk_row(conn, disk_id)
                waiting = catalog.frozen_gens(conn, disk_id)
            head = self._heads.pop(disk_id, None)
            if head is not None:
                head.retired = True
            if waiting:  # only the live generation goes; the frozen ones seal later
                self.trash.discard(head_root(self.data_dir, disk_id, gen))
            else:
                self.trash.discard(self.data_dir / "heads" / disk_id)
        self.collapse_or_postpone(base)
