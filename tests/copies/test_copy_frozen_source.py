"""The guide's hung copy, for real: regions as separate processes, the source region frozen with
SIGSTOP mid-copy. Within the stall time the copy is Stalled and ``snapferry copy diagnose``
says its source region does not answer (exit 1); after SIGCONT it moves again by itself and
succeeds, and its events tell the whole story in order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from snapferry.sdk import connect
from snapferry.testing.cli import run
from snapferry.testing.copies import Family, MiB, copy_body
from snapferry.testing.processes import Processes, regions_and_front_door

pytestmark = pytest.mark.slow
STALL = 2  # seconds without progress before westus calls a copy Stalled

WESTUS = f"""copy_stall_seconds = {STALL}
copy_streams = 1
peer_faults = "delay=1,delay_seconds=0.4"
"""


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    with regions_and_front_door(tmp_path, {"westus": WESTUS}) as procs:
        yield procs


def cli(root: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFERRY_")}
    return run({**env, "SNAPFERRY_HOME": str(root)}, command)


def diagnosis(root: Path, target: str) -> tuple[int, dict[str, Any]]:
    proc = cli(root, ["copy", "diagnose", target, "-o", "json"])
    return proc.returncode, json.loads(proc.stdout)


def test_a_frozen_source_region_stalls_a_copy_that_then_finishes(processes: Processes) -> None:
    cloud = processes.wait_cloud()
    processes.wait_regions()
    connect(ResourceManagementClient, cloud).resource_groups.create_or_update(
        "frozen", {"location": "eastus"}
    )
    compute = connect(ComputeManagementClient, cloud, retry_total=0)
    family = Family(compute, "frozen", "disk", "eastus", 32 * MiB).create()
    family.write([(0, np.random.default_rng(2).bytes(24 * MiB))])
    source = family.snapshot("snap")
    made = compute.snapshots.begin_create_or_update(
        "frozen", "snap-west", copy_body(source, "westus")
    ).result()
    target = str(made.id)

    east = processes.procs["eastus"].pid
    os.kill(east, signal.SIGSTOP)  # the source region hangs, as a wedged host would
    try:
        frozen_at = time.monotonic()
        while True:
            code, found = diagnosis(processes.root, target)
            if found["diagnosis"] == "stalled-source-unreachable":
                break
            assert found["diagnosis"] in ("moving", "queued", "stalled-no-progress"), found
            assert time.monotonic() - frozen_at < 60, found
            time.sleep(0.5)
        assert code == 1 and found["state"] == "Stalled"
        assert found["completionPercent"] < 100 and found["stalledSince"] is not None
        assert found["lastError"]["code"] == "PeerUnavailable"
        assert "eastus" in found["advice"] and "resumes by itself" in found["advice"]
        shown = cli(processes.root, ["copy", "diagnose", target])
        assert shown.returncode == 1 and "stalled" in shown.stdout
    finally:
        os.kill(east, signal.SIGCONT)

    waited = cli(processes.root, ["copy", "wait", target, "--timeout", "120", "-o", "json"])
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["state"] == "Succeeded"
    code, found = diagnosis(processes.root, target)
    assert code == 0 and found["diagnosis"] == "succeeded"

    told = cli(processes.root, ["copy", "events", target, "-o", "json"])
    events = [json.loads(line) for line in told.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded"
    stalled = next(e for e in events if e["kind"] == "stalled")
    assert stalled["details"]["sourceReachable"] is False
    assert "region eastus does not answer" in stalled["message"]
    assert kinds.index("stalled") < kinds.index("moving") < kinds.index("succeeded")
    moving = events[kinds.index("moving")]
    assert moving["details"]["stillSeconds"] >= STALL
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
