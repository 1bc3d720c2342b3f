"""RegionService.recover settles what a crash cut short, at the exact states a kill can leave."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from snapferry.control.access import Signer
from snapferry.control.creation import Region
from snapferry.control.ids import ResourceId
from snapferry.control.service import RegionService
from snapferry.engine import Engine
from snapferry.meta import records

DISK = {
    "location": "eastus",
    "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
}


def service(engine: Engine) -> RegionService:
    return RegionService(Region("eastus", ("1",)), engine, Signer(b"k" * 32))


def rid(name: str, rtype: str = "disks") -> ResourceId:
    return ResourceId.of("sub", "rg", rtype, name)


def settle(svc: RegionService, op_id: str) -> records.Operation:
    svc.close()  # waits for the background operation
    return svc.operation("sub", op_id)


def test_interrupted_creation_fails_and_its_orphan_goes(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = service(engine)
        _, done = svc.put(rid("kept"), DISK)
        assert settle(svc, done.id).status == "Succeeded"
        # The state a kill leaves between the engine call and the commit that records it:
        # the record still "creating", the operation InProgress, the engine disk made.
        svc = service(engine)
        _, op = svc.put(rid("cut"), DISK)
        svc.close()
        with engine.db.begin() as conn:
            rec = records.get(conn, rid("cut").key)
            assert rec is not None
            records.put(conn, replace(rec, state="creating", engine_id=None))
            conn.execute(
                records.arm_operations.update()
                .where(records.arm_operations.c.id == op.id)
                .values(status="InProgress", ended_at=None)
            )
        orphan = engine.create_disk(4096)
        svc = service(engine)
        svc.recover()
        status = svc.operation("sub", op.id)
        assert status.status == "Failed"
        assert status.error == {
            "code": "OperationInterrupted",
            "message": "the region restarted before the operation finished; nothing was created",
        }
        assert svc.location_of(rid("cut")) is None
        disk_ids = {d.id for d in engine.list_disks()}
        assert orphan.id not in disk_ids
        kept = svc.get(rid("kept"))
        assert kept["properties"]["provisioningState"] == "Succeeded"
        assert len(disk_ids) == 1  # the acknowledged disk alone
        svc.close()


def test_interrupted_deletion_is_finished(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = service(engine)
        _, made = svc.put(rid("doomed"), DISK)
        settle(svc, made.id)
        with engine.db.begin() as conn:
            rec = records.get(conn, rid("doomed").key)
            assert rec is not None
            op = records.Operation(
                "op1", "sub", rec.key, "delete", "InProgress", None, None, 1.0, None
            )
            records.put(conn, replace(rec, state="deleting"))
            records.add_operation(conn, op)
        svc = service(engine)
        svc.recover()
        assert svc.operation("sub", "op1").status == "Succeeded"
        assert svc.location_of(rid("doomed")) is None
        assert engine.list_disks() == []
        svc.close()
