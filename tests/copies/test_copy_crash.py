"""``kill -9`` of the whole embedded cloud while a copy plans, moves data, and nears its commit:
after each restart the copy resumes from what the target durably holds (progress never goes
back), and the finished target is byte-identical to its source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient

from snapferry.sdk import connect
from snapferry.testing.cloud import RunningCloud
from snapferry.testing.copies import (
    Family,
    MiB,
    cloud_running,
    copies,
    copy_body,
    copy_events,
    sha_of_snapshot,
    wait_copied,
)

pytestmark = pytest.mark.slow
SLOW = 'peer_faults = "delay=1.0,delay_seconds=0.3"\ncopy_streams = 1'


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    with cloud_running(tmp_path_factory.mktemp("cloud"), westus_extra=SLOW) as cloud:
        yield cloud


def report_of(running: RunningCloud, target: str) -> dict[str, Any]:
    (report,) = copies(running.cloud, target)
    return report


def kill_when(
    running: RunningCloud, target: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """SIGKILL the cloud as soon as the copy's report satisfies ready; the last report seen."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = report_of(running, target)
        if ready(report):
            running.kill()
            return report
        assert report["state"] != "Succeeded", f"the copy ended before the kill: {report}"
        time.sleep(0.02)
    raise AssertionError("the copy never reached the kill point")


def test_copies_survive_kill_9_while_planning_moving_and_committing(
    running: RunningCloud, groups: Any
) -> None:
    compute = connect(ComputeManagementClient, running.cloud, retry_total=0)
    groups.resource_groups.create_or_update("crash", {"location": "eastus"})
    family = Family(compute, "crash", "data", "eastus", 96 * MiB).create()
    rng = np.random.default_rng(5)
    family.write([(0, rng.bytes(72 * MiB))])
    source = family.snapshot("day1")
    made = compute.snapshots.begin_create_or_update(
        "crash", "day1-west", copy_body(source, "westus")
    ).result()
    target = str(made.id)
    points = [
        lambda r: r["state"] == "Copying" and r["bytesTotal"] == 0,  # planning
        lambda r: 0 < r["completionPercent"] < 50,  # moving data
        lambda r: r["completionPercent"] >= 80,  # the last pieces, then the commit
    ]
    progress = [0]
    for point in points:
        before = kill_when(running, target, point)
        running.launch()
        compute = connect(ComputeManagementClient, running.cloud, retry_total=0)
        after = report_of(running, target)
        assert after["bytesCopied"] >= before["bytesCopied"]  # nothing durable was lost
        assert after["completionPercent"] >= progress[-1]
        progress.append(after["completionPercent"])
    seen = wait_copied(compute, "crash", "day1-west")
    assert seen == sorted(seen) and seen[0] >= progress[-1] and seen[-1] == 100
    final = report_of(running, target)
    assert final["attempts"] >= 4 and final["bytesCopied"] == final["bytesTotal"] == 72 * MiB
    kinds = [e["kind"] for e in copy_events(running.cloud, target)]
    assert kinds.count("takeover") >= 2 and kinds[-1] == "succeeded"  # each kill, told
    assert sha_of_snapshot(compute, "crash", "day1-west") == sha_of_snapshot(
        compute, "crash", "day1"
    )
