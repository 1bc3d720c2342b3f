"""Recovery of a region's ARM state after a crash: the ``recover`` half of ``RegionService``.

Run after ``Engine.open`` (which has sealed every frozen snapshot and finished every fold):
creations whose engine object exists complete, creations cut off before it did fail and lose
what they half made, deletions finish, disk sizes are re-read from the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from snapferry.control import records
from snapferry.control.copies import CopyTargets
from snapferry.control.creation import size_props
from snapferry.control.records import Record
from snapferry.engine import Engine
from snapferry.errors import NotFound

log = logging.getLogger(__name__)


class Recovery:
    """Mixed into RegionService; uses its engine, clock, lookup and engine-object deletion."""

    engine: Engine
    clock: Callable[[], float]

    def _lookup(self, key: str) -> Record | None:
        raise NotImplementedError

    def _delete_engine_object(self, rec: Record) -> None:
        raise NotImplementedError

    def recover(self) -> None:
        """Settle the operations a crash interrupted (run after ``Engine.open``, which has
        sealed every frozen snapshot): finish deletions and creations whose engine object
        exists; fail creations cut off before it did and delete what they half made. Sync disk
        sizes with the engine. Forget operations finished more than a day ago."""
        with self.engine.db.connect() as conn:
            running = records.running_operations(conn)
        for op in running:
            rec = self._lookup(op.resource_key)
            if op.kind == "delete" and rec is not None:
                self._delete_engine_object(rec)
                with self.engine.db.begin() as conn:
                    records.drop(conn, rec.key)
                    CopyTargets.forget(conn, rec.key)
                    records.finish_operation(conn, op.id, "Succeeded", self.clock())
                continue
            if op.kind == "create" and rec is not None and self._engine_object_ready(rec):
                with self.engine.db.begin() as conn:
                    records.put(conn, replace(rec, state="succeeded"))
                    records.finish_operation(conn, op.id, "Succeeded", self.clock())
                continue
            error = {
                "code": "OperationInterrupted",
                "message": "the region restarted before the operation finished; "
                "nothing was created",
            }
            with self.engine.db.begin() as conn:
                if rec is not None and rec.state == "creating":
                    records.drop(conn, rec.key)
                records.finish_operation(conn, op.id, "Failed", self.clock(), error=error)
        self._drop_orphans()
        self._sync_disk_sizes()
        with self.engine.db.begin() as conn:
            records.prune_operations(conn, self.clock() - 86400)

    def _engine_object_ready(self, rec: Record) -> bool:
        if rec.engine_id is None:
            return False
        try:
            if rec.rtype == "disks":
                self.engine.get_disk(rec.engine_id)
                return True
            return self.engine.get_snapshot(rec.engine_id).state == "ready"
        except NotFound:
            return False

    def _sync_disk_sizes(self) -> None:
        """A resize grows the engine disk before its record commits: after a crash between
        the two, the engine's size is the truth."""
        with self.engine.db.connect() as conn:
            disks = [r for r in records.all_records(conn) if r.rtype == "disks" and r.engine_id]
        for rec in disks:
            assert rec.engine_id is not None
            try:
                size = self.engine.get_disk(rec.engine_id).size_bytes
            except NotFound:
                continue
            if size != rec.props.get("diskSizeBytes"):
                with self.engine.db.begin() as conn:
                    records.put(conn, rec.with_props(**size_props(size)))

    def _drop_orphans(self) -> None:
        """Delete engine disks and snapshots no resource names: the work of creations a crash
        cut off before they were recorded, or whose seal failed."""
        with self.engine.db.connect() as conn:
            named = {r.engine_id for r in records.all_records(conn)}
        for snap in self.engine.list_snapshots():
            if snap.id not in named:
                log.info("dropping snapshot %s left by an interrupted creation", snap.id)
                self.engine.delete_snapshot(snap.id)
        for disk in self.engine.list_disks():
            if disk.id not in named:
                log.info("dropping disk %s left by an interrupted creation", disk.id)
                self.engine.delete_disk(disk.id)
