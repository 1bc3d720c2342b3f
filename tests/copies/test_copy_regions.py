"""Copies between regions that run as separate processes: a source region that goes down in
the middle of a copy stops only that copy, which retries with backoff and completes once the
region is back; a target region killed mid-copy resumes it when it starts again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.copies import Family, MiB, copies, copy_body, sha_of_snapshot, wait_copied
from snapferry.testing.processes import Processes, regions_and_front_door

pytestmark = pytest.mark.slow
SLOW = 'copy_lease_seconds = 3\npeer_faults = "delay=1.0,delay_seconds=0.3"\ncopy_streams = 1\n'


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with regions_and_front_door(
        tmp_path, extra={"westus": SLOW, "eastus": "copy_lease_seconds = 3\n"}
    ) as procs:
        yield procs


def until(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_copy_outlives_either_region_going_down(processes: Processes) -> None:
    cloud = processes.wait_cloud()
    connect(ResourceManagementClient, cloud).resource_groups.create_or_update(
        "apart", {"location": "eastus"}
    )
    compute = connect(ComputeManagementClient, cloud, retry_total=0)
    family = until(lambda: _family(compute))
    source = family.snapshot("day1")
    made = compute.snapshots.begin_create_or_update(
        "apart", "day1-west", copy_body(source, "westus")
    ).result()
    target = str(made.id)

    def report() -> dict[str, Any]:
        (found,) = copies(cloud, target)
        return found

    until(lambda: report()["completionPercent"] > 0)
    processes.kill("eastus")  # the source region goes down mid-copy
    down = until(lambda: (r := report())["state"] == "Queued" and r["lastError"] and r)
    assert down["lastError"]["code"] == "PeerUnavailable" and down["completionPercent"] < 100
    time.sleep(1.5)
    assert report()["completionPercent"] == down["completionPercent"]
    processes.start_region("eastus")
    until(lambda: report()["completionPercent"] > down["completionPercent"], timeout=90)
    processes.kill("westus")  # now the target region dies mid-copy
    processes.start_region("westus")
    seen = until(lambda: _copied(compute), timeout=120)
    assert seen[-1] == 100
    final = report()
    assert final["state"] == "Succeeded" and final["attempts"] >= 3
    assert sha_of_snapshot(compute, "apart", "day1-west") == sha_of_snapshot(
        compute, "apart", "day1"
    )


def _family(compute: ComputeManagementClient) -> Family | None:
    try:
        made = Family(compute, "apart", "data", "eastus", 64 * MiB).create()
    except Exception:
        return None
    made.write([(0, np.random.default_rng(8).bytes(48 * MiB))])
    return made


def _copied(compute: ComputeManagementClient) -> list[int] | None:
    try:
        return wait_copied(compute, "apart", "day1-west", timeout=120)
    except Exception:
        return None
