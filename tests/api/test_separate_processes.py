"""Regions and the front door as separate processes (``snapferry serve``), as across hosts:
the unmodified SDK works through the front door, and a region that is killed stops only what
involves it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.processes import Processes, regions_and_front_door

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with regions_and_front_door(tmp_path) as procs:
        yield procs


def empty(location: str) -> dict[str, Any]:
    return {
        "location": location,
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1},
    }


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except HttpResponseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_sdk_through_a_separate_front_door(processes: Processes) -> None:
    cloud = processes.wait_cloud()
    connect(ResourceManagementClient, cloud).resource_groups.create_or_update(
        "apart", {"location": "eastus"}
    )
    compute = connect(ComputeManagementClient, cloud, retry_total=0)
    wait_for(lambda: compute.disks.begin_create_or_update("apart", "e0", empty("eastus")).result())
    wait_for(lambda: compute.disks.begin_create_or_update("apart", "w0", empty("westus")).result())
    for i in range(1, 4):
        compute.disks.begin_create_or_update("apart", f"e{i}", empty("eastus")).result()
        compute.disks.begin_create_or_update("apart", f"w{i}", empty("westus")).result()
    names = sorted(d.name for d in compute.disks.list_by_resource_group("apart"))
    assert names == ["e0", "e1", "e2", "e3", "w0", "w1", "w2", "w3"]
    snap = compute.snapshots.begin_create_or_update(
        "apart",
        "e0-snap",
        {
            "location": "eastus",
            "properties": {
                "creationData": {
                    "createOption": "Copy",
                    "sourceResourceId": compute.disks.get("apart", "e0").id,
                }
            },
        },
    ).result()
    assert snap.sku.name == "Standard_ZRS"

    processes.kill("westus")  # a region that is down stops only what involves it
    assert compute.disks.get("apart", "e1").name == "e1"
    compute.disks.begin_create_or_update("apart", "e9", empty("eastus")).result()
    with pytest.raises(HttpResponseError) as down:
        compute.disks.get("apart", "w1")
    assert down.value.status_code == 503
    assert down.value.error is not None
    assert down.value.error.code == "RegionUnavailable"
    with pytest.raises(HttpResponseError):
        compute.disks.begin_create_or_update("apart", "w9", empty("westus")).result()

    processes.start_region("westus")
    back = wait_for(lambda: compute.disks.get("apart", "w1"))
    assert back.provisioning_state == "Succeeded"
    names = sorted(d.name for d in compute.disks.list())
    assert "w3" in names
    assert "e9" in names
    assert "w9" not in names
