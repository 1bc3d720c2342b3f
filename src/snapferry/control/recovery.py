"""Recovery of a region's ARM state after a crash: the ``recover`` half of ``RegionService``.

Run after ``Engine.open`` (which has sealed and folded what the storage let it): creations whose
engine object exists complete, creations cut off before it did fail and lose what they half
made, deletions finish (or fail, named, when the storage refuses them), disk sizes are re-read
from the engine. Nothing here keeps a region from starting: what cannot be done now is left to
``drop_orphans``, which the region's upkeep runs again once postponed seals finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from snapferry.control.copies import CopyTargets
from snapferry.control.creation import size_props
from snapferry.engine import Engine
from snapferry.errors import NotFound
from snapferry.faults import named
from snapferry.meta import records
from snapferry.meta.records import Record

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
                try:
                    self._delete_engine_object(rec)
                except Exception as exc:
                    if self._left_by_failed_creation(rec):
                        pass  # a Failed resource's leftovers: the upkeep drops them later
                    else:  # the resource stays as it was; the deletion failed
                        error = error_of(exc)
                        with self.engine.db.begin() as conn:
                            records.put(conn, replace(rec, state="succeeded"))
                            records.finish_operation(
                                conn, op.id, "Failed", self.clock(), error=error
                            )
                        continue
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
        self.drop_orphans()
        self._sync_disk_sizes()
        with self.engine.db.begin() as conn:
            records.prune_operations(conn, self.clock() - 86400)

    def _left_by_failed_creation(self, rec: Record) -> bool:
        """Whether rec's engine object is a snapshot still sealing: only a creation that failed
        leaves one behind a resource (a Succeeded snapshot was sealed first)."""
        if rec.rtype != "snapshots" or rec.engine_id is None:
            return False
        try:
            return self.engine.get_snapshot(rec.engine_id).state == "sealing"
        except NotFound:
            return False

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

    def drop_orphans(self, min_age: float = 0.0) -> None:
        """Delete engine disks and snapshots no resource names: the work of creations a crash
        cut off before they were recorded, or that failed. A snapshot still sealing (its seal
        postponed for want of space) waits for its seal; one the storage will not delete now is
        left for the next call. While the region serves, a creation makes its engine object
        just before its record names it: ``min_age`` (seconds) spares objects that young, and
        the objects are listed before the records are read."""
        cutoff = self.engine.clock() - min_age if min_age else float("inf")
        snaps = [s for s in self.engine.list_snapshots() if s.created_at <= cutoff]
        disks = [d for d in self.engine.list_disks() if d.created_at <= cutoff]
        with self.engine.db.connect() as conn:
            named = {r.engine_id for r in records.all_records(conn)}
        for snap in snaps:
            if snap.id not in named and snap.state != "sealing":
                log.info("dropping snapshot %s left by a failed creation", snap.id)
                self._drop(self.engine.delete_snapshot, snap.id)
        for disk in disks:
            if disk.id not in named:
                log.info("dropping disk %s left by a failed creation", disk.id)
                self._drop(self.engine.delete_disk, disk.id)

    @staticmethod
    def _drop(delete: Callable[[str], None], engine_id: str) -> None:
        try:
            delete(engine_id)
        except Exception as exc:
            log.info("dropping %s is postponed: %s", engine_id, error_of(exc)["message"])


def error_of(exc: Exception) -> dict[str, str]:
    """The operation error for exc: its storage fault, its own code, or an internal error."""
    typed = named(exc)
    if typed is None:
        log.error("unexpected error", exc_info=exc)
        return {"code": "InternalError", "message": "the operation failed unexpectedly"}
    return {"code": typed.code, "message": typed.message}
