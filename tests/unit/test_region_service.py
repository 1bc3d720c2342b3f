"""RegionService in process: retried PUTs, round trips, failed seals."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from snapferry.control.access import Signer
from snapferry.control.creation import Region
from snapferry.control.errors import AnotherOperationInProgress, OperationNotAllowed
from snapferry.control.ids import ResourceId
from snapferry.control.service import RegionService
from snapferry.engine import Engine
from snapferry.errors import StorageFull, TransientStoreError
from snapferry.faults import storage_fault
from snapferry.meta import records
from snapferry.store.local import LocalStore
from snapferry.store.wrappers import FailingStore, FaultSchedule
from snapferry.testing.arm import snapshot_body
from snapferry.testing.db_faults import FailingStatements

DISK = {
    "location": "eastus",
    "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
}


def test_a_retried_put_joins_the_running_creation(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32), operation_delay=0.5)
        disk_id = ResourceId.of("sub", "rg", "disks", "d")
        disk, _ = svc.put(disk_id, DISK)
        snap = snapshot_body(disk["id"])
        snap_id = ResourceId.of("sub", "rg", "snapshots", "s")
        first, op = svc.put(snap_id, snap)
        assert first["properties"]["provisioningState"] == "Updating"
        again, same = svc.put(snap_id, snap)
        assert same.id == op.id
        assert again["properties"]["uniqueId"] == first["properties"]["uniqueId"]
        with pytest.raises(AnotherOperationInProgress):
            svc.patch(snap_id, {"tags": {"a": "b"}})
        svc.close()
        assert svc.operation("sub", op.id).status == "Succeeded"
        assert len(engine.list_snapshots()) == 1  # one snapshot, not two


def test_a_retry_asking_for_something_else_is_refused(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32), operation_delay=0.5)
        disk, _ = svc.put(ResourceId.of("sub", "rg", "disks", "d"), DISK)
        snap = snapshot_body(disk["id"])
        snap_id = ResourceId.of("sub", "rg", "snapshots", "s")
        svc.put(snap_id, snap)
        with pytest.raises(AnotherOperationInProgress):
            svc.put(snap_id, {**snap, "tags": {"changed": "yes"}})
        svc.close()


def test_a_disk_made_with_no_zones_round_trips(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = RegionService(Region("eastus", ("1",)), engine, Signer(b"k" * 32))
        rid = ResourceId.of("sub", "rg", "disks", "d")
        made, _ = svc.put(rid, {**DISK, "zones": []})
        again, _ = svc.put(rid, made)  # what a GET shows, sent back
        assert again["properties"]["diskSizeBytes"] == 1024**3
        svc.close()


def io_error(message: str) -> OSError:
    return OSError(errno.EIO, f"Input/output error ({message})")


def no_space(message: str) -> OSError:
    return OSError(errno.ENOSPC, f"No space left on device ({message})")


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (TransientStoreError, "StoreUnavailable"),
        (io_error, "StorageIOError"),
        (no_space, "StorageFull"),
    ],
)
def test_a_failed_seal_shows_failed_and_deletes_to_nothing(
    tmp_path: Path, fault: Callable[[str], Exception], code: str
) -> None:
    schedule = FaultSchedule(ops=["put_if_absent"], every=1)
    store = FailingStore(LocalStore(tmp_path / "store"), schedule, fault)
    with Engine.open(tmp_path, store=store) as engine:
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32))
        disk, _ = svc.put(ResourceId.of("sub", "rg", "disks", "d"), DISK)
        assert disk["properties"]["provisioningState"] == "Succeeded"
        rec = svc._lookup(ResourceId.of("sub", "rg", "disks", "d").key)
        assert rec is not None
        assert rec.engine_id is not None
        engine.write(rec.engine_id, 0, b"\x07" * 65536)
        snap = snapshot_body(disk["id"])
        _, op = svc.put(ResourceId.of("sub", "rg", "snapshots", "s"), snap)
        svc.close()
        failed = svc.operation("sub", op.id)
        assert failed.status == "Failed"
        assert failed.error is not None
        assert failed.error["code"] == code
        snap_id = ResourceId.of("sub", "rg", "snapshots", "s")
        shown = svc.get(snap_id)  # visible as Failed, not usable
        assert shown["properties"]["provisioningState"] == "Failed"
        with pytest.raises(OperationNotAllowed):
            svc.grant_access(snap_id, {"access": "Read", "durationInSeconds": 60})
    with Engine.open(tmp_path) as engine:  # the store works again: the seal finishes at open
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32))
        svc.recover()
        delete = svc.delete(snap_id)
        svc.close()
        assert delete is not None and svc.operation("sub", delete.id).status == "Succeeded"
        assert svc.location_of(snap_id) is None
        svc.drop_orphans()
        assert [s.state for s in engine.list_snapshots()] == []  # hidden under its disk


def test_a_creation_whose_record_cannot_be_committed_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    """The engine made the snapshot but the database refused to record it: the operation fails
    named (no InProgress left for a retried PUT to join), the snapshot's engine object goes,
    and a retried PUT makes the snapshot."""
    with Engine.open(tmp_path) as engine:
        faults = FailingStatements(engine.db)
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32))
        disk, _ = svc.put(ResourceId.of("sub", "rg", "disks", "d"), DISK)
        snap = snapshot_body(disk["id"])
        rid = ResourceId.of("sub", "rg", "snapshots", "s")

        def record_of_made_snapshot(sql: str, params: Mapping[str, Any]) -> bool:
            return (
                "arm_resources" in sql
                and params.get("engine_id") is not None
                and (params.get("type") == "snapshots")
            )

        faults.arm(record_of_made_snapshot)
        with pytest.raises(Exception, match="database or disk is full") as refused:
            svc.put(rid, snap)
        assert isinstance(storage_fault(refused.value), StorageFull)
        assert faults.failed == 1
        with engine.db.connect() as conn:
            ops = records.running_operations(conn)
        assert ops == []
        assert svc.location_of(rid) is None
        assert engine.finish_pending() == 0  # what the upkeep does: seal it, then drop it
        svc.drop_orphans()
        assert [s.state for s in engine.list_snapshots()] in ([], ["deleted"])
        _, op = svc.put(rid, snap)  # a retry is a new creation, not the dead one
        svc.close()
        assert svc.operation("sub", op.id).status == "Succeeded"
        assert svc.get(rid)["properties"]["provisioningState"] == "Succeeded"


def test_a_deletion_the_database_fails_leaves_the_resource_as_it_was(tmp_path: Path) -> None:
    """A disk I/O error at the deletion's engine step: the operation fails StorageIOError, the
    snapshot is Succeeded and readable as before, and a retried DELETE removes it."""
    with Engine.open(tmp_path) as engine:
        faults = FailingStatements(engine.db)
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32))
        disk, _ = svc.put(ResourceId.of("sub", "rg", "disks", "d"), DISK)
        snap = snapshot_body(disk["id"])
        rid = ResourceId.of("sub", "rg", "snapshots", "s")
        svc.put(rid, snap)

        def marking_deleted(sql: str, params: Mapping[str, Any]) -> bool:
            return sql.lstrip().upper().startswith("UPDATE SNAPSHOTS") and (
                params.get("state") == "deleted"
            )

        deadline = time.monotonic() + 10
        while svc.get(rid)["properties"]["provisioningState"] != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        faults.arm(marking_deleted, message=FailingStatements.IO_ERROR)
        op = svc.delete(rid)
        assert op is not None
        deadline = time.monotonic() + 10
        while not (done := svc.operation("sub", op.id)).done:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert faults.failed == 1
        assert done.status == "Failed" and done.error is not None
        assert done.error["code"] == "StorageIOError"
        assert svc.get(rid)["properties"]["provisioningState"] == "Succeeded"
        again = svc.delete(rid)
        svc.close()
        assert again is not None and svc.operation("sub", again.id).status == "Succeeded"
        assert svc.location_of(rid) is None
