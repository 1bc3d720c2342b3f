"""RegionService in process: a retried PUT joins the creation already running."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.control.access import Signer
from snapferry.control.creation import Region
from snapferry.control.errors import AnotherOperationInProgress
from snapferry.control.ids import ResourceId
from snapferry.control.service import RegionService
from snapferry.engine import Engine

DISK = {
    "location": "eastus",
    "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
}


def test_a_retried_put_joins_the_running_creation(tmp_path: Path) -> None:
    with Engine.open(tmp_path) as engine:
        svc = RegionService(Region("eastus"), engine, Signer(b"k" * 32), operation_delay=0.5)
        disk_id = ResourceId.of("sub", "rg", "disks", "d")
        disk, _ = svc.put(disk_id, DISK)
        snap = {
            "location": "eastus",
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk["id"]}
            },
        }
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
